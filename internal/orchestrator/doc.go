// Package orchestrator holds the reconcilers that turn services into tasks:
// pure functions from (desired, observed, now) to actions, which the
// server's controller loop carries out. Restart policies and their back-off
// are decided here.
package orchestrator
