#!/usr/bin/env bash
# Compares drover build with buildctl on the same buildkitd (a 3-stage
# Dockerfile, cold and cached), and drover up --build of a 5-service project
# with the same steps done by hand. See docs/benchmarks.md.
#
# Needs root, Go, containerd, runc, the CNI plugins, buildkitd and buildctl
# (scripts/install-deps.sh installs them). Extra arguments go to the test,
# e.g.: sudo ./scripts/bench-build.sh -buildbench.rounds 5
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-build.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc buildkitd buildctl; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-build.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done
exec go test ./test/integration -run '^TestBuildBenchmark$' -count=1 -v -timeout 30m \
  -args -buildbench "$@"
