#!/usr/bin/env bash
# Times a 53.6 MB image getting to run on 3 nodes: `drover image load` once
# on the server, against copying the archive to each node and importing it
# there with `ctr images import` (node after node, and all at once), each
# followed by the same `drover up -d` of a global service. The nodes are
# network namespaces of this machine (test/cluster). See docs/benchmarks.md.
#
# Needs root, Go, containerd, runc, ctr, ip, busybox-static and the CNI
# plugins (scripts/install-deps.sh installs them). Extra arguments go to the
# test binary, e.g.:
#   sudo ./scripts/bench-images.sh -imagebench.rounds 5 -imagebench.out /tmp/images.md
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-images.sh: run it as root (sudo $0)" >&2
  exit 1
fi
for bin in go containerd runc ctr containerd-shim-runc-v2 ip busybox; do
  if ! command -v "$bin" >/dev/null; then
    echo "bench-images.sh: $bin not found on PATH (see scripts/install-deps.sh)" >&2
    exit 1
  fi
done

exec go test ./test/cluster -run '^TestImageSpreadBenchmark$' -count=1 -v -timeout 30m \
  -args -imagebench -imagebench.rounds 3 "$@"
