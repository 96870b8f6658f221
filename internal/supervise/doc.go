// Package supervise starts, watches, adopts and stops the helper daemons
// that an agent runs beside itself (containerd, buildkitd): one way for
// all of them, as the conventions ask.
//
// A daemon runs as a child in its own session, so that it (and what it
// runs) outlives a kill -9 of Drover. Its pid and log files live in its own
// directory; a lock there keeps two Drovers on one data dir from starting
// two copies at once. When a copy already answers (after an agent restart)
// it is adopted, not started again. A supervisor restarts it with back-off
// whenever it goes away, until Close; Close leaves it running, Stop ends it.
package supervise
