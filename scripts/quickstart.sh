#!/usr/bin/env bash
# Installs what is missing, builds Drover, starts a server in the
# background and deploys examples/hello. Run as root from the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
./scripts/install-deps.sh
go build -o bin/ ./cmd/drover ./cmd/drover-logger ./cmd/drover-mkimage
export DROVER_HOST=unix:///run/drover/drover.sock
if ! ./bin/drover version 2>/dev/null | grep -q '^Server:$'; then
  mkdir -p /var/log
  nohup ./bin/drover server >/var/log/drover.log 2>&1 &
  echo "started drover server (log: /var/log/drover.log)"
fi
# Wait until the local agent has joined, so the image has somewhere to go.
for i in $(seq 1 60); do
  if ./bin/drover image ls >/dev/null 2>&1; then break; fi
  sleep 1
done
./bin/drover-mkimage -o /tmp/drover-busybox.tar
./bin/drover image load -i /tmp/drover-busybox.tar
./bin/drover -f examples/hello/compose.yaml up -d
./bin/drover -f examples/hello/compose.yaml ps
echo
echo "Open http://localhost:8080/ (or http://$(hostname -I | awk '{print $1}'):8080/)"
echo "Logs: ./bin/drover -f examples/hello/compose.yaml logs -f"
echo "Stop: ./bin/drover -f examples/hello/compose.yaml down"
