// Command buildbench measures what Drover's builds cost over BuildKit's own
// client (issue 9): `drover build` of a 3-stage Dockerfile, cold
// (--no-cache) and cached, against `buildctl build` of the same context
// sent straight to the same buildkitd; and `drover up --build -d` of a
// 5-service Compose file against the same steps done by hand (buildctl
// builds, `drover image load`, `drover up -d --no-build`).
//
// It starts a real `drover server` through the integration harness (temp
// data dir and socket, its own containerd, the busybox test image loaded),
// lets a first, unmeasured `drover build` start the agent's buildkitd and
// make the FROM image ready in the agent's containerd namespace, and then
// drives buildctl at that buildkitd's socket,
// <data-dir>/agent/buildkit/buildkitd.sock, with the frontend options
// drover sets (image-resolve-mode=local, the Dockerfile's name, no-cache)
// and the same two exports drover's solve makes: the image into
// containerd, unpacked, and an OCI archive. Each measurement is repeated
// -runs times, the order of the methods alternating from run to run; the
// median and the minimum are printed, with the ratios.
//
// It must run as root on a host with containerd, runc, the CNI plugins,
// buildkitd and buildctl (see scripts/bench-build.sh and
// docs/benchmarks.md):
//
//	go run ./test/bench/buildbench -runs 3
//
// Everything it makes (server, containerd, buildkitd, containers, bridges,
// temp dirs) is removed before it exits, also on failure and on SIGINT or
// SIGTERM.
package main
