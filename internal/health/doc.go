// Package health runs a container's health check, as Docker does, and turns
// the probe results into the container's health status (starting, healthy or
// unhealthy) for the agent to report.
//
// The package has a pure core and a thin edge. Resolve merges a service's
// healthcheck with the image's HEALTHCHECK and fills in Docker's defaults;
// State.Next applies one probe result and NextDelay says when to probe
// next, neither reading a clock. Run is the edge: it runs the probes of one
// container through an Execer on a real clock and reports status changes.
//
// The rules follow Docker's daemon (daemon/health.go):
//
//   - A container starts in "starting" and the first probe runs one interval
//     (start_interval while in the start period) after it starts.
//   - Exit code 0 is a success: the status becomes healthy and the failing
//     streak resets. Any other exit code, an exec error and a timeout
//     (exit code -1) are failures.
//   - While the status is still starting, a failure whose probe began within
//     start_period of the container's start does not count. Otherwise each
//     failure extends the failing streak, and a streak of Retries makes the
//     container unhealthy. A later success makes it healthy again.
//   - The last five results are kept as the log.
package health
