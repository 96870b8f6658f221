#!/usr/bin/env bash
# Control-plane simulation: the real server (embedded etcd, reconciler,
# scheduler, API handlers) with N simulated nodes in one process, deploying
# one stack of many replicas. Reports placements per second, the time until
# every task runs, the server's memory and etcd's size. See
# docs/benchmarks.md ("Control plane at scale").
#
# Needs Go only: no root, containerd or network. Extra arguments go to the
# program, e.g.:
#   ./scripts/bench-sim.sh                                   # 100,000 tasks on 1,000 nodes
#   GOMEMLIMIT=10GiB ./scripts/bench-sim.sh -nodes 5000 -tasks 1000000 -timeout 60m
#   ./scripts/bench-sim.sh -nodes 50 -tasks 2000 -services 20  # a quick look
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if ! command -v go >/dev/null; then
  echo "bench-sim.sh: go not found on PATH" >&2
  exit 1
fi
if [ "$#" -eq 0 ]; then
  set -- -nodes 1000 -tasks 100000 -services 100
fi
# Built first, so that the compiler's CPU and memory are not measured.
bin="$(mktemp -d)/drover-sim"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./test/bench/sim
"$bin" "$@"
