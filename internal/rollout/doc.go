// Package rollout decides the pace of a service's update: which replica
// slots get a task of the new spec now, when the update has failed, and
// when it has ended. It is pure: the reconciler hands it a service, its
// slots and the time, and carries out what it returns.
//
// A slot is updated once its new task runs, is healthy when the service
// has a health check, and has stayed so for the update config's monitor
// period. At most parallelism slots are in flight at a time; a failure of
// a new task within its monitor period counts against max_failure_ratio,
// past which the failure action (pause, continue, rollback) is taken.
// Canaries are the first slots started beside their old tasks and held
// there until promoted.
package rollout
