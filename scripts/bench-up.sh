#!/usr/bin/env bash
# Compares `drover up -d` of N replicas with starting the same containers
# directly on containerd (ctr run -d, and the containerd Go client,
# sequential and concurrent). See docs/benchmarks.md.
#
# Needs root, Go, containerd, runc, ctr and the CNI plugins
# (scripts/install-deps.sh installs them). Extra arguments go to the
# program, e.g.: sudo ./scripts/bench-up.sh -n 1,10 -runs 5 -trace-out /tmp/timeline.txt
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-up.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc ctr containerd-shim-runc-v2; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-up.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done

if [ "$#" -eq 0 ]; then
  set -- -n 1,10,50 -runs 3
fi
exec go run ./test/bench/upbench "$@"
