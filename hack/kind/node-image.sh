#!/usr/bin/env bash
# Builds the kind node image kubeparts' kind tests run on, without Docker or a registry:
# a Debian bookworm root filesystem from debootstrap (with containerd, runc and the CNI
# plugins from Debian), kind's own base files from its Go module, the stock v1.36.3
# kubeadm, kubelet and kubectl from bin/, and the control-plane images built from bin/'s
# binaries as OCI archives, imported into the node's containerd at boot before the kubelet
# starts. Imported into podman as localhost/kubeparts-kind-node:<key>; the key hashes
# everything that goes in, so a second run with the same inputs does nothing (~5 s).
# Costs the first time on 2 cores: debootstrap and apt ~4 min (the Debian part is cached
# in bin/kind-node/ as a tarball), the rest ~1 min.
#
# usage: hack/kind/node-image.sh BIN_DIR   (as root; prints the image name last)
# ENGINE=docker imports it into Docker instead, for kind's default provider.
set -euo pipefail
BIN=$(realpath "${1:?bin dir}")
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KIND_VERSION=v0.33.0
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=containerd,runc,iptables,nftables,conntrack,iproute2,ethtool,kmod,pigz,fuse-overlayfs,jq,curl,procps,containernetworking-plugins,ca-certificates,systemd,systemd-sysv,dbus
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
ENGINE=${ENGINE:-podman}
CACHE=$BIN/kind-node
mkdir -p "$CACHE"

for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause; do
  [ -x "$BIN/$b" ] || { echo "node-image: $BIN/$b missing (make build upstream)" >&2; exit 1; }
done
KIND_FILES=$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files
[ -d "$KIND_FILES" ] || (cd "$REPO/hack/kind" && go mod download sigs.k8s.io/kind)

key=$( (cat "$0" "$HERE"/files/* ; echo "$PACKAGES $KIND_VERSION"; for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause; do sha256sum "$BIN/$b"; done) | sha256sum | cut -c1-12)
IMAGE=localhost/kubeparts-kind-node:v1.36.3-$key
if $ENGINE image inspect "$IMAGE" >/dev/null 2>&1; then echo "node-image: $IMAGE (cached)" >&2; echo "$IMAGE"; exit 0; fi

# The Debian part: debootstrap, then the packages, as one cached tarball.
base=$CACHE/bookworm-$(echo "$PACKAGES" | sha256sum | cut -c1-12).tar
if [ ! -s "$base" ]; then
  echo "node-image: debootstrap bookworm ($MIRROR; ~4 min)" >&2
  tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  chroot "$tmp" apt-get clean
  tar -C "$tmp" --numeric-owner -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp"
fi

R=$(mktemp -d "$CACHE/node.XXXXXX")
trap 'rm -rf "$R"' EXIT
tar -C "$R" --numeric-owner -xf "$base"

# kind's base files, as its images/base/Dockerfile lays them out.
install -m 0755 "$KIND_FILES"/usr/local/bin/* "$R/usr/local/bin/"
mkdir -p "$R/kind/bin" "$R/LICENSES" "$R/etc/containerd" "$R/etc/systemd/system/kubelet.service.d" "$R/etc/kubernetes/manifests" "$R/opt/cni/bin" "$R/kind/images"
cp -r "$KIND_FILES/kind/." "$R/kind/"; chmod -R a+rX "$R/kind"; chmod 0755 "$R"/kind/bin/*
cp "$KIND_FILES"/LICENSES/* "$R/LICENSES/" 2>/dev/null || true
install -m 0644 "$KIND_FILES/etc/crictl.yaml" "$R/etc/"
install -m 0644 "$KIND_FILES/etc/default/kubelet" "$R/etc/default/"
install -m 0644 "$KIND_FILES"/etc/sysctl.d/* "$R/etc/sysctl.d/"
install -m 0644 "$KIND_FILES"/etc/systemd/system/*.service "$KIND_FILES"/etc/systemd/system/*.slice "$R/etc/systemd/system/"
install -m 0644 "$KIND_FILES"/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
# containerd: kind's settings, plus a CNI config written from the node's pod range (kind's
# own CNI, kindnetd, is an image from a registry).
cat "$KIND_FILES/etc/containerd/config.toml" "$HERE/files/containerd-cni.toml" > "$R/etc/containerd/config.toml"
install -m 0644 "$HERE/files/kubeparts.conflist.template" "$R/etc/containerd/"
# Without CAP_SYS_RESOURCE (these machines' containers lack it) runc cannot lower a
# container's oom_score_adj below containerd's, as it does for the kubelet's critical pods:
# containerd clamps it instead (what kind's entrypoint does for rootless nodes).
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$R/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$R/etc/containerd/config.toml"
# The same systemd trimming as kind's Dockerfile.
find "$R/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/etc/systemd/system/*.wants/* "$R"/lib/systemd/system/local-fs.target.wants/* \
      "$R"/lib/systemd/system/sockets.target.wants/*udev* "$R"/lib/systemd/system/sockets.target.wants/*initctl* "$R"/lib/systemd/system/basic.target.wants/*
grep -q '^ReadKMsg=no' "$R/etc/systemd/journald.conf" || echo "ReadKMsg=no" >> "$R/etc/systemd/journald.conf"
[ -e "$R/sbin/init" ] || ln -s /usr/lib/systemd/systemd "$R/sbin/init"
# Debian's containerd where kind expects its own build.
for b in containerd ctr containerd-shim-runc-v2; do ln -sf /usr/bin/$b "$R/usr/local/bin/$b"; done
for p in bridge host-local loopback ptp portmap; do cp "$R/usr/lib/cni/$p" "$R/opt/cni/bin/"; done
chroot "$R" /bin/sh -c 'ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json'
# Kubernetes: the stock binaries, and the images kubeadm runs, imported at boot.
install -m 0755 "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$R/usr/bin/"
build() { (cd "$REPO" && go run ./hack/images/build "$@" >&2); }
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build --binary "$BIN/$c" --dir usr/local/bin --name "registry.k8s.io/$c:v1.36.3" --out "$R/kind/images/$c.tar"
done
build --binary "$BIN/kube-proxy" --dir usr/local/bin --name registry.k8s.io/kube-proxy:v1.36.3 --out "$R/kind/images/kube-proxy.tar" \
  --host-binary "$(command -v nft)" --host-binary "$(command -v iptables-nft)" --host-binary "$(command -v conntrack)"
build --binary "$BIN/etcd" --dir usr/local/bin --name registry.k8s.io/etcd:3.6.8-0 --out "$R/kind/images/etcd.tar"
build --binary "$BIN/coredns" --name registry.k8s.io/coredns/coredns:v1.15.0 --out "$R/kind/images/coredns.tar"
build --binary "$BIN/pause" --name registry.k8s.io/pause:3.10 --out "$R/kind/images/pause.tar"
install -m 0644 "$HERE/files/kubeparts-import-images.service" "$R/etc/systemd/system/"
chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service kubeparts-import-images.service >/dev/null 2>&1
chroot "$R" systemctl mask systemd-binfmt.service systemd-sysctl.service >/dev/null 2>&1
echo "v1.36.3" > "$R/kind/version"
rm -f "$R/usr/sbin/policy-rc.d"

echo "node-image: $ENGINE import $IMAGE" >&2
tar -C "$R" --numeric-owner -c . | $ENGINE import \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' \
  - "$IMAGE" >/dev/null
echo "$IMAGE"
