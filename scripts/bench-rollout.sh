#!/usr/bin/env bash
# Times a rolling update of 50 replicas of a health-checked web service on
# 3 nodes (update_config: parallelism 10, start-first, delay 0s, monitor 1ms)
# against the floor of creating the same 50 containers from nothing
# (`drover up -d --wait`), with a request loop on the published port that
# must see no failure. The nodes are network namespaces of this machine
# (test/cluster). See docs/benchmarks.md.
#
# Needs root, Go, containerd, runc, ctr, ip, busybox-static and the CNI
# plugins (scripts/install-deps.sh installs them). Extra arguments go to the
# test binary, e.g.:
#   sudo ./scripts/bench-rollout.sh -rolloutbench.rounds 5 -rolloutbench.out /tmp/rollout.md
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-rollout.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc ctr containerd-shim-runc-v2 ip busybox; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-rollout.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done

exec go test ./test/cluster -run '^TestRolloutBenchmark$' -count=1 -v -timeout 60m \
  -args -rolloutbench -rolloutbench.rounds 3 "$@"
