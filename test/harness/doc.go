// Package harness runs real Drover servers for integration tests: it builds
// the drover binary and a busybox test image once, starts `drover server` in
// a temporary data dir with its own containerd, runs CLI commands against
// it, kills and restarts it, and cleans up containers, networks and
// processes when the test ends, even when it fails.
package harness
