#!/usr/bin/env bash
# Times `drover up -d --wait` of a 10-service Compose file with health
# checks and service_healthy dependencies, against the same services with
# health checks only and with neither (plain `up -d`), and breaks one run
# down by phase. See docs/benchmarks.md, issue 3.
#
# Needs root, Go, containerd, runc and the CNI plugins
# (scripts/install-deps.sh installs them). Extra arguments go to the
# program, e.g.: sudo ./scripts/bench-parity.sh -runs 5 -keep
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-parity.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc containerd-shim-runc-v2; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-parity.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done

if [ "$#" -eq 0 ]; then
  set -- -runs 3
fi
exec go run ./test/bench/parity "$@"
