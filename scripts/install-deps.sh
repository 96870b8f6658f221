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

# BuildKit (drover build, up --build): Debian has no buildkitd, so build it
# from its Go module at the version Drover is tested with. The module's
# go.mod cannot be `go install`ed (it has exclude directives), so it is
# built from a copy of the module's source.
BUILDKIT_VERSION=v0.34.2
if ! buildkitd --version 2>/dev/null | grep -q " ${BUILDKIT_VERSION} "; then
  echo "building buildkitd ${BUILDKIT_VERSION} from its Go module"
  export PATH="$PATH:/usr/local/go/bin"
  src=$(GOFLAGS=-mod=mod go mod download -json "github.com/moby/buildkit@${BUILDKIT_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  work=$(mktemp -d)
  cp -r "$src" "$work/buildkit"
  chmod -R u+w "$work/buildkit"
  (cd "$work/buildkit" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=${BUILDKIT_VERSION}" -o /usr/local/bin/ ./cmd/buildkitd ./cmd/buildctl)
  rm -rf "$work"
fi
