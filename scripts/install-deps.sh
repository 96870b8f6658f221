#!/usr/bin/env bash
# Installs what Drover needs from the distribution: containerd, runc, crun
# (the second OCI runtime the tests use), the standard CNI plugins,
# busybox-static (for the example and test images) and the network tools.
# Needs root and Debian or Ubuntu.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/bin/tini-static ] || need+=(tini)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! command -v go >/dev/null; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "note: add /usr/local/go/bin to PATH" >&2
  else
    echo "Go is missing: install Go 1.26 or later (https://go.dev/dl/) and run again" >&2
    exit 1
  fi
fi
