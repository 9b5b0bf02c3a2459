#!/usr/bin/env bash
# Builds the upstream Kubernetes v1.36.3 e2e suite into $BIN (default bin/e2e-upstream):
#   e2e.test  go test -c k8s.io/kubernetes/test/e2e, version-stamped like hack/upstream/build.sh
#   ginkgo    github.com/onsi/ginkgo/v2/ginkgo at the version k8s v1.36.3 pins
#   agnhost   k8s.io/kubernetes/test/images/agnhost, static (packed into an image by images/)
#   regression-issue-74839  the Conntrack spec's boom-server, static
# from the module hack/upstream/e2e. Each is rebuilt only when the module's go.mod/go.sum
# changed. e2e.test takes ~10+ min on 2 cores the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mod=$root/hack/upstream/e2e
bin=${BIN:-$root/bin/e2e-upstream}
mkdir -p "$bin"
k8s_version=v1.36.3
digest=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=36 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.stamp" 2>/dev/null)" = "$digest" ]; }
stamp() { echo "$digest" > "$bin/.$1.stamp"; }
timed() { local t0=$SECONDS; "$@"; echo "e2e-upstream: ${*: -1} built in $((SECONDS - t0))s"; }

# The tools the agnhost image carries come from Debian (see README.md).
need=()
command -v nc.openbsd >/dev/null || need+=(netcat-openbsd)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v iperf >/dev/null || need+=(iperf)
command -v curl >/dev/null || need+=(curl)
command -v wget >/dev/null || need+=(wget)
if [ ${#need[@]} -gt 0 ]; then
  echo "e2e-upstream: installing Debian packages ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

cd "$mod"
export CGO_ENABLED=0
for t in ${*:-ginkgo agnhost regression-issue-74839 e2e.test}; do
  if fresh "$t"; then echo "e2e-upstream: $t already built"; continue; fi
  echo "e2e-upstream: building $t"
  case $t in
    ginkgo)   timed go build -trimpath -o "$bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo ;;
    agnhost)  timed go build -trimpath -ldflags "-s -w" -o "$bin/agnhost" k8s.io/kubernetes/test/images/agnhost ;;
    regression-issue-74839) timed go build -trimpath -ldflags "-s -w" -o "$bin/$t" k8s.io/kubernetes/test/images/regression-issue-74839 ;;
    e2e.test) timed go test -c -trimpath -ldflags "$ldflags" -o "$bin/e2e.test" k8s.io/kubernetes/test/e2e ;;
    *) echo "e2e-upstream: unknown target $t" >&2; exit 2 ;;
  esac
  stamp "$t"
done
