#!/usr/bin/env bash
# Imports the e2e image archives (hack/e2e-upstream/images, written to $IMAGES, default
# bin/e2e-upstream/images) into the containerd of every node of the running
# `kubeparts up` cluster kept in DATA_DIR: /run/kubeparts/<id>/containerd.sock and
# /run/kubeparts/<id>/worker<N>/containerd.sock, <id> being the first 8 hex digits of
# sha256(absolute data dir).
# Usage: hack/e2e-upstream/import-images.sh DATA_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
images=${IMAGES:-$root/bin/e2e-upstream/images}
data=$(realpath -m "${1:?usage: $0 DATA_DIR}")
id=$(printf %s "$data" | sha256sum | cut -c1-8)
run=/run/kubeparts/$id
socks=$(find "$run" -maxdepth 2 -name containerd.sock -type s | sort)
[ -n "$socks" ] || { echo "import-images: no containerd.sock under $run" >&2; exit 1; }
for sock in $socks; do
  for tar in "$images"/*.tar; do
    ctr --address "$sock" -n k8s.io images import "$tar" >/dev/null
  done
  echo "import-images: $(ls "$images"/*.tar | wc -l) images into $sock"
done
