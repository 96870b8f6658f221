#!/usr/bin/env bash
# Runs every Drover test: unit tests, and integration tests against real
# etcd, containerd, runc and CNI plugins. Must run as root; installs the
# system packages it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
  echo "run as root: the integration tests start containers and networks" >&2
  exit 1
fi
./scripts/install-deps.sh
go vet ./...
go test -count=1 -timeout 20m "$@" ./...
