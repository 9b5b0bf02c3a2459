#!/usr/bin/env bash
# Runs upstream Kubernetes v1.36.3 e2e specs against a fresh 2-node `kubeparts up` cluster:
# kubeparts-proxy by default, the stock kube-proxy with --stock=proxy.
#
#   hack/e2e-upstream/run.sh [--stock=ROLE]... [FOCUS_REGEX]
#
# FOCUS_REGEX defaults to the Conformance network subset:
#   \[sig-network\] (Services|DNS|Conntrack|EndpointSlice|Networking).*\[Conformance\]
# Environment: SKIP (ginkgo skip regex, default below), TIMEOUT (ginkgo timeout, 25m),
# PROCS (2), PORT_BASE (36443, clear of the default 16443 other clusters use),
# NODES (2), OUT (run directory, default bin/e2e-upstream/runs/<label>-<time>),
# KEEP_DATA=1 keeps the cluster's data dir (its logs are copied to OUT anyway),
# UP_ARGS adds flags to `kubeparts up` (e.g. UP_ARGS=--proxy-arg=--v=4).
#
# Steps: builds e2e.test/ginkgo/agnhost if needed (build.sh), writes the image archives
# (images/), starts `kubeparts up --fresh` in the background, waits for its
# "export KUBECONFIG" line, imports the archives into every node's containerd
# (import-images.sh), runs ginkgo, saves the proxies' nftables tables and the logs,
# stops the cluster (SIGINT, then waits) and prints the JUnit summary (summary.py).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/bin
e2ebin=$bin/e2e-upstream

up_args=() label=kubeparts
focus='\[sig-network\] (Services|DNS|Conntrack|EndpointSlice|Networking).*\[Conformance\]'
for a in "$@"; do
  case $a in
    --stock=*) up_args+=("$a"); label=stock-${a#--stock=}; label=${label//,/-} ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) focus=$a ;;
  esac
done
skip=${SKIP:-'\[Serial\]|\[Disruptive\]|\[Flaky\]|\[Feature:|IPv6|DualStack|LoadBalancer|ESIPP|\[Slow\]'}
timeout=${TIMEOUT:-25m}
procs=${PROCS:-2}
nodes=${NODES:-2}
port_base=${PORT_BASE:-36443}
out=${OUT:-$e2ebin/runs/$label-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/report" "$out/artifacts"
out=$(cd "$out" && pwd)
data=$(mktemp -d /tmp/kp-e2e-XXXXXX)
id=$(printf %s "$data" | sha256sum | cut -c1-8)
log() { echo "e2e-upstream: $(date +%T) $*" | tee -a "$out/run.log"; }
log "run $label, focus $focus, out $out, data dir $data"

t0=$SECONDS
"$here/build.sh" 2>&1 | tee -a "$out/run.log" || exit 1
images=$e2ebin/images
(cd "$root" && go run ./hack/e2e-upstream/images -agnhost "$e2ebin/agnhost" -pause "$bin/pause" \
  -coredns "$bin/coredns" -regression "$e2ebin/regression-issue-74839" -porter-dir "$(cd "$root/hack/upstream/e2e" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter" \
  -out "$images") >> "$out/run.log" 2>&1 || { log "writing images failed"; exit 1; }
log "binaries and images ready after $((SECONDS - t0))s"
# Which binaries ran: bin/ is rebuilt by whoever works in the tree meanwhile.
{ echo "git $(git -C "$root" rev-parse --short HEAD) $(git -C "$root" status --short | tr '\n' ' ')"
  for b in kubeparts kubeparts-proxy kube-proxy kubeparts-nodeagent; do
    echo "$b $(sha256sum < "$bin/$b" | cut -c1-12) $(date -r "$bin/$b" +%FT%T)"
  done; } >> "$out/run.log"

up_pid=
stop_cluster() {
  [ -n "$up_pid" ] || return 0
  if kill -0 "$up_pid" 2>/dev/null; then
    log "stopping the cluster (pid $up_pid)"
    kill -INT "$up_pid"
    wait "$up_pid" 2>/dev/null
  fi
  up_pid=
  cp -r "$data/logs" "$out/logs" 2>/dev/null
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}
trap 'stop_cluster; exit 130' INT TERM
trap stop_cluster EXIT

t1=$SECONDS
: > "$out/up.log"
"$bin/kubeparts" up --bin-dir "$bin" --data-dir "$data" --fresh --nodes "$nodes" --port-base "$port_base" \
  "${up_args[@]}" ${UP_ARGS:-} > "$out/up.log" 2>&1 &
up_pid=$!
until grep -q '^export KUBECONFIG=' "$out/up.log"; do
  if ! kill -0 "$up_pid" 2>/dev/null; then
    up_pid=; log "kubeparts up exited:"; tail -20 "$out/up.log"; exit 1
  fi
  sleep 2
done
kubeconfig=$(sed -n 's/^export KUBECONFIG=//p' "$out/up.log")
log "cluster up after $((SECONDS - t1))s: $(grep -c . "$out/up.log") lines in up.log, KUBECONFIG=$kubeconfig"
IMAGES=$images "$here/import-images.sh" "$data" 2>&1 | tee -a "$out/run.log"
export PATH=$bin:$PATH KUBECONFIG=$kubeconfig
kubectl get nodes -o wide >> "$out/run.log" 2>&1
# The suite waits for kube-system pods (CoreDNS) itself; give them a head start.
kubectl -n kube-system wait --for=condition=Ready pods --all --timeout=120s >> "$out/run.log" 2>&1

t2=$SECONDS
log "ginkgo: $procs procs, timeout $timeout"
"$e2ebin/ginkgo" -p --procs="$procs" --focus="$focus" --skip="$skip" --timeout="$timeout" \
  --no-color --silence-skips --output-interceptor-mode=none \
  "$e2ebin/e2e.test" -- \
  --provider=local --kubeconfig="$kubeconfig" --kubectl-path="$bin/kubectl" \
  --num-nodes="$nodes" --node-os-distro=debian --allowed-not-ready-nodes=0 \
  --e2e-output-dir="$out/artifacts" --report-dir="$out/report" --disable-log-dump \
  > "$out/ginkgo.log" 2>&1
rc=$?
log "ginkgo exited $rc after $((SECONDS - t2))s"

# The proxies' rules as the run left them: the host node's table in this network
# namespace, each worker's in its own (kubeparts-proxy-<id>, or kube-proxy for stock).
{
  for ns in "" $(ip netns list | awk '{print $1}' | grep "^kp$id-"); do
    ex=(); [ -n "$ns" ] && ex=(ip netns exec "$ns")
    for t in "kubeparts-proxy-$id" kube-proxy; do
      "${ex[@]}" nft list table ip "$t" 2>/dev/null | sed "1i # netns ${ns:-host}: table ip $t"
    done
  done
} > "$out/nft.txt"
stop_cluster
trap - EXIT
python3 "$here/summary.py" "$out/report" "$label" | tee "$out/summary.txt"
log "done after $((SECONDS - t0))s; ginkgo log $out/ginkgo.log"
exit $rc
