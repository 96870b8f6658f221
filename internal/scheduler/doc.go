// Package scheduler places tasks on nodes. It is pure: it takes a snapshot
// of nodes and the tasks already placed and returns a plan, reading no store,
// clock or randomness it was not handed.
package scheduler
