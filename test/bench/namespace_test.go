package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// namespaceContent is one object of every namespaced built-in kind that needs no
// other controller to go away: pods are unscheduled (deleted at once), workloads
// have no replicas, PersistentVolumeClaims are left out (their protection finalizer
// is another controller's to lift).
const namespaceContent = `apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {k: v}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: pt}
template: {spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec: {replicas: 0, selector: {app: rc}, template: {metadata: {labels: {app: rc}}, spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec: {limits: [{type: Container, max: {cpu: "2"}}]}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: rq}
spec: {hard: {pods: "100"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec: {replicas: 0, selector: {matchLabels: {app: d}}, template: {metadata: {labels: {app: d}}, spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {replicas: 0, selector: {matchLabels: {app: rs}}, template: {metadata: {labels: {app: rs}}, spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ss}
spec: {replicas: 0, serviceName: svc, selector: {matchLabels: {app: ss}}, template: {metadata: {labels: {app: ss}}, spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {selector: {matchLabels: {app: ds}}, template: {metadata: {labels: {app: ds}}, spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: cr}
revision: 1
data: {spec: {}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {suspend: true, template: {spec: {restartPolicy: Never, containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec: {schedule: "0 0 1 1 *", suspend: true, jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: registry.k8s.io/pause:3.10}]}}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hpa}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}, minReplicas: 1, maxReplicas: 2, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec: {minAvailable: 1, selector: {matchLabels: {app: d}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: sa}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
spec: {defaultBackend: {service: {name: svc, port: {number: 80}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: eps}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: e}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: bench
reportingInstance: bench
action: Test
reason: Test
regarding: {kind: Pod, name: p}
type: Normal
`

// namespaceControllerUser is the namespace controller's identity under
// --use-service-account-credentials, stock's and ours.
const namespaceControllerUser = "system:serviceaccount:kube-system:namespace-controller"

// nsController is a controller manager running only its namespace controller, each
// controller under its own ServiceAccount (the identity the audit log counts by).
func nsController(b *testing.B) []implementation {
	bin, err := framework.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	common := []string{"--controllers=namespace-controller", "--leader-elect=false", "--secure-port=0",
		"--kube-api-qps=20", "--kube-api-burst=30", "--kube-api-content-type=application/vnd.kubernetes.protobuf",
		"--concurrent-namespace-syncs=10", "--use-service-account-credentials=true"}
	return []implementation{
		{"stock", filepath.Join(bin, "kube-controller-manager"), common},
		{"kubeparts", filepath.Join(bin, "kubeparts-controller-manager"), append([]string{"--health-probe-bind-address=0"}, common...)},
	}
}

// fillNamespaces creates n namespaces, each with namespaceContent.
func fillNamespaces(b *testing.B, prefix string, n int) []string {
	ctx := context.Background()
	dc, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Client.Discovery()))
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(namespaceContent, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			b.Fatal(err)
		}
		objs = append(objs, u)
	}
	names := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ns, err := env.Namespace(ctx, fmt.Sprintf("%s%d-", prefix, i))
		if err != nil {
			b.Fatal(err)
		}
		names[i] = ns
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, o := range objs {
				m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
				if err != nil {
					errs <- err
					return
				}
				obj := o.DeepCopy()
				if obj.GetKind() == "Event" {
					_ = unstructured.SetNestedField(obj.Object, ns, "regarding", "namespace")
				}
				if _, err := dc.Resource(m.Resource).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("%s in %s: %w", o.GetKind(), ns, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return names
}

// auditRequests counts, in the audit log from offset on, the requests of user:
// all of them and the writes.
func auditRequests(b *testing.B, offset int64, user string) (all, writes int) {
	f, err := os.Open(filepath.Join(env.LogDir, "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	needle := []byte(`"username":"` + user + `"`)
	for s.Scan() {
		line := s.Bytes()
		if !bytes.Contains(line, needle) || !bytes.Contains(line, []byte(`"stage":"ResponseComplete"`)) {
			continue
		}
		var e struct {
			Verb string `json:"verb"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		all++
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
			writes++
		}
	}
	return all, writes
}

func auditSize(b *testing.B) int64 {
	st, err := os.Stat(filepath.Join(env.LogDir, "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// deleteNamespaces runs impl, deletes 100 namespaces holding namespaceContent at once
// and times 90% and 100% of them gone; the namespace controller's requests come from
// the audit log.
func deleteNamespaces(b *testing.B, impl implementation, round int) (t90, t100 time.Duration, perNS, writesPerNS float64) {
	const n = 100
	ctx := context.Background()
	names := fillNamespaces(b, fmt.Sprintf("nsdel-%s%d-", impl.name, round), n)
	_, stop := impl.start(b, impl.name+"-namespace.log")
	defer stop()
	// Warm up: one namespace deleted, so informers and ServiceAccount tokens are ready.
	warm, err := env.Namespace(ctx, "nsdel-warm-")
	if err != nil {
		b.Fatal(err)
	}
	_ = env.Client.CoreV1().Namespaces().Delete(ctx, warm, metav1.DeleteOptions{})
	waitGone(b, []string{warm}, 0, 2*time.Minute)

	offset := auditSize(b)
	began := time.Now()
	var wg sync.WaitGroup
	for _, ns := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	t90 = waitGone(b, names, n/10, 10*time.Minute).Sub(began)
	t100 = waitGone(b, names, 0, 10*time.Minute).Sub(began)
	all, writes := auditRequests(b, offset, namespaceControllerUser)
	return t90.Round(time.Millisecond), t100.Round(time.Millisecond), float64(all) / n, float64(writes) / n
}

// waitGone polls until at most left of names exist and returns when that was.
func waitGone(b *testing.B, names []string, left int, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		list, err := env.Client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		there := 0
		for _, ns := range list.Items {
			if want[ns.Name] {
				there++
			}
		}
		if there <= left {
			return time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("more than %d of %d namespaces left after %s", left, len(names), timeout)
	return time.Time{}
}

// BenchmarkNamespaceDeletion: 100 namespaces, each holding one object of every
// namespaced built-in kind, deleted at once under the stock kube-controller-manager
// and under kubeparts-controller-manager (namespace controller only, same budget,
// alternating which goes first): time to 90% and 100% gone, as ratios
// kubeparts/stock, and the namespace controller's requests and writes per namespace.
func BenchmarkNamespaceDeletion(b *testing.B) {
	rounds := 1
	if v, err := fmt.Sscan(os.Getenv("BENCH_ROUNDS"), &rounds); err != nil || v != 1 || rounds < 1 {
		rounds = 1
	}
	impls := nsController(b)
	t90, t100 := map[string]time.Duration{}, map[string]time.Duration{}
	reqs, writes := map[string]float64{}, map[string]float64{}
	for i := 0; i < b.N*rounds; i++ {
		order := impls
		if i%2 == 1 {
			order = []implementation{impls[1], impls[0]}
		}
		for _, impl := range order {
			a, z, r, w := deleteNamespaces(b, impl, i)
			t90[impl.name] += a
			t100[impl.name] += z
			reqs[impl.name] += r
			writes[impl.name] += w
			b.Logf("namespace deletion %s: 90%% in %s, 100%% in %s, %.1f requests and %.1f writes per namespace", impl.name, a, z, r, w)
		}
	}
	n := float64(b.N * rounds)
	b.ReportMetric(t90["kubeparts"].Seconds()/t90["stock"].Seconds(), "t90-ratio")
	b.ReportMetric(t100["kubeparts"].Seconds()/t100["stock"].Seconds(), "t100-ratio")
	b.ReportMetric(reqs["stock"]/n, "stock-requests/ns")
	b.ReportMetric(reqs["kubeparts"]/n, "kubeparts-requests/ns")
	b.ReportMetric(writes["stock"]/n, "stock-writes/ns")
	b.ReportMetric(writes["kubeparts"]/n, "kubeparts-writes/ns")
}
