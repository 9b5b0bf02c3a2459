#!/usr/bin/env bash
# Builds the stock binaries pinned in hack/upstream/go.mod into $BIN (default ../../bin),
# and CoreDNS from its own module hack/upstream/coredns (its k8s.io requirements differ
# from the Kubernetes release's, so it cannot share hack/upstream/go.mod).
# A binary is rebuilt only when its version stamp (pinned version + go.sum digest) changed,
# so a second `make upstream` costs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-$here/../../bin}
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)
k8s_version=v1.36.3
etcd_version=v3.6.8
coredns_version=v1.15.0
digest=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
coredns_digest=$(cat "$here/coredns/go.mod" "$here/coredns/go.sum" | sha256sum | cut -c1-16)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=36 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

build() { # name package ldflags version [module dir, default hack/upstream] [go.sum digest]
  local name=$1 pkg=$2 flags=$3 dir=${5:-$here} stamp="$bin/.$1.stamp" want="$4-${6:-$digest}"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "upstream: $name $4 already built"
    return
  fi
  echo "upstream: building $name $4 (first build of all binaries takes ~10 min on 2 cores)"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$bin/$name" "$pkg")
  echo "$want" > "$stamp"
}

targets=${*:-etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy coredns}
for t in $targets; do
  case $t in
    etcd) build etcd ./etcd "-s -w" "$etcd_version" ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl|kube-proxy)
      build "$t" "k8s.io/kubernetes/cmd/$t" "$ldflags" "$k8s_version" ;;
    coredns) build coredns . "-s -w" "$coredns_version" "$here/coredns" "$coredns_digest" ;;
    *) echo "upstream: unknown binary $t" >&2; exit 2 ;;
  esac
done
