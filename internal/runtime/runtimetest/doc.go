// Package runtimetest is the conformance suite of runtime.Driver and
// runtime.ImageStore: every implementation runs Suite against itself, so
// that the agent can rely on the same behaviour from each (exit codes, logs,
// Docker's entrypoint and command rules, stop with grace, idempotent
// destroy, adoption after a restart, clean failure of a bad start).
//
// The suite imports images built from /bin/busybox with package imagebuild,
// so it needs no registry.
package runtimetest
