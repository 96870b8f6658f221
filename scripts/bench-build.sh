#!/usr/bin/env bash
# Compares `drover build` of a 3-stage Dockerfile, cold and cached, with
# `buildctl build` of the same context straight to the same buildkitd (the
# agent's), and `drover up --build -d` of a 5-service Compose file with the
# same steps done by hand (buildctl builds, drover image load, drover up -d
# --no-build). See docs/benchmarks.md.
#
# Needs root, Go, containerd, runc, the CNI plugins, busybox-static,
# buildkitd and buildctl (scripts/install-deps.sh installs them). Extra
# arguments go to the program, e.g.: sudo ./scripts/bench-build.sh -runs 5 -keep
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-build.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc containerd-shim-runc-v2 buildkitd buildctl busybox; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-build.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done

if [ "$#" -eq 0 ]; then
  set -- -runs 3
fi
exec go run ./test/bench/buildbench "$@"
