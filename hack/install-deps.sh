#!/usr/bin/env bash
# Installs what the local cluster and the tests need from Debian (containerd, runc, the
# CNI plugins, iptables for the bridge's masquerading, busybox-static for the busybox image) and downloads the Go modules.
# Idempotent: a machine that has everything only gets the checks.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] && [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
# kubeparts-proxy and the stock kube-proxy program nftables; tests read rules with nft and conntrack entries with conntrack.
command -v nft >/dev/null || missing+=(nftables)
command -v conntrack >/dev/null || missing+=(conntrack)
# A static busybox becomes the local cluster's busybox image (shell, wget, nc for examples and tests).
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# make test-kind: kind's nodes run under podman (no Docker engine here), from a node image
# whose root filesystem debootstrap makes.
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# podman's network stack for kind's network (the one the feasibility runs used).
dpkg -s netavark >/dev/null 2>&1 || missing+=(netavark)
dpkg -s aardvark-dns >/dev/null 2>&1 || missing+=(aardvark-dns)
# kubeparts up --control-planes N: the control-plane endpoint is HAProxy, as in kubeadm's HA guide.
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: $pkgs; run as root or: sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
  echo "deps: Debian packages present (containerd, runc, containernetworking-plugins, iptables, busybox-static)"
fi

echo "deps: downloading Go modules"
go mod download
(cd hack/upstream && go mod download)
(cd hack/upstream/coredns && go mod download)
(cd hack/kind && go mod download)
