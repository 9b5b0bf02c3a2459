package controllermanager

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// auditEvent is what the tests read of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	User      struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
	} `json:"objectRef"`
}

// writers reads the audit log: for each "verb resource" done in ns, the users and
// user agents that did it.
func writers(t *testing.T, ns string) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(env.LogDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Stage != "ResponseComplete" || e.ObjectRef.Namespace != ns {
			continue
		}
		key := e.Verb + " " + e.ObjectRef.Resource
		if out[key] == nil {
			out[key] = map[string]bool{}
		}
		out[key][e.User.Username+" | "+e.UserAgent] = true
	}
	return out
}

func rolledOut(ctx context.Context, ns, name string, replicas int32) func() error {
	return func() error {
		d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st := d.Status; st.ObservedGeneration < d.Generation || st.AvailableReplicas != replicas || st.UpdatedReplicas != replicas {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	}
}

// TestPerControllerClients: each controller's requests carry a user agent of its own
// and, with --use-service-account-credentials, the identity of its own ServiceAccount
// (kube-system/<stock client name>), authorized by nothing but the stock
// system:controller:* ClusterRoles; without the flag the manager's identity. The audit
// log of the real kube-apiserver says who made each request.
func TestPerControllerClients(t *testing.T) {
	const ua = "kubeparts-controller-manager/"
	for _, tc := range []struct {
		name  string
		flags []string
		// want: for each "verb resource" in the test namespace, the one user and
		// user-agent suffix that must have done it.
		want map[string]string
	}{
		{"service account credentials", []string{"--use-service-account-credentials=true"}, map[string]string{
			"create replicasets": "system:serviceaccount:kube-system:deployment-controller | /system:serviceaccount:kube-system:deployment-controller",
			"create pods":        "system:serviceaccount:kube-system:replicaset-controller | /system:serviceaccount:kube-system:replicaset-controller",
			"update deployments": "system:serviceaccount:kube-system:deployment-controller | /system:serviceaccount:kube-system:deployment-controller",
		}},
		{"the manager's own identity", nil, map[string]string{
			"create replicasets": "@admin | /deployment-controller",
			"create pods":        "@admin | /replicaset-controller",
			"update deployments": "@admin | /deployment-controller",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns, err := env.Namespace(ctx, "clients-")
			if err != nil {
				t.Fatal(err)
			}
			kctx, cancel := context.WithCancel(ctx)
			defer cancel()
			framework.FakeKubelet(kctx, env.Client, ns, nil)
			startManager(t, env.WriteKubeconfig(t), append([]string{"--leader-elect=false", "--controllers=deployment,replicaset"}, tc.flags...)...)
			if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, framework.Deployment(ns, "web", 3), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			framework.Eventually(t, time.Minute, "rollout", rolledOut(ctx, ns, "web", 3))
			admin := adminName(t)
			framework.Eventually(t, 10*time.Second, "requests in the audit log", func() error {
				got := writers(t, ns)
				for what, want := range tc.want {
					user, suffix, _ := strings.Cut(strings.ReplaceAll(want, "@admin", admin), " | ")
					if len(got[what]) == 0 {
						return fmt.Errorf("no %s in the audit log", what)
					}
					for who := range got[what] {
						gotUser, gotUA, _ := strings.Cut(who, " | ")
						if gotUser != user || !strings.HasPrefix(gotUA, ua) || !strings.HasSuffix(gotUA, suffix) {
							return fmt.Errorf("%s by %q (user agent %q), want %s with a user agent %s...%s", what, gotUser, gotUA, user, ua, suffix)
						}
					}
				}
				return nil
			})
		})
	}
}

// adminName is the user the tests' kubeconfig authenticates as.
func adminName(t *testing.T) string {
	t.Helper()
	rev, err := env.Client.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rev.Status.UserInfo.Username
}

// TestStockRoleDecides: with service-account credentials a controller can do exactly
// what its stock ClusterRole grants. Without the replicaset-controller binding its pod
// creations are refused under its own name while the deployment controller, on its
// own identity, still creates the ReplicaSet; the binding back, the pods come.
func TestStockRoleDecides(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "role-")
	if err != nil {
		t.Fatal(err)
	}
	const binding = "system:controller:replicaset-controller"
	crbs := env.Client.RbacV1().ClusterRoleBindings()
	saved, err := crbs.Get(ctx, binding, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the stock binding %s: %v", binding, err)
	}
	restore := func() {
		b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: saved.Name, Labels: saved.Labels, Annotations: saved.Annotations},
			RoleRef: saved.RoleRef, Subjects: saved.Subjects}
		if _, err := crbs.Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Errorf("restore %s: %v", binding, err)
		}
	}
	t.Cleanup(restore)
	if err := crbs.Delete(ctx, binding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m := startManager(t, env.WriteKubeconfig(t), "--leader-elect=false", "--controllers=deployment,replicaset", "--use-service-account-credentials=true")
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, framework.Deployment(ns, "denied", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "ReplicaSet created, pods refused", func() error {
		rss, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(rss.Items) != 1 {
			return fmt.Errorf("%v ReplicaSets (%v)", len(rss.Items), err)
		}
		log, _ := os.ReadFile(m.log)
		if !strings.Contains(string(log), `system:serviceaccount:kube-system:replicaset-controller\" cannot create resource \"pods\"`) &&
			!strings.Contains(string(log), `system:serviceaccount:kube-system:replicaset-controller" cannot create resource "pods"`) {
			return fmt.Errorf("no refusal of the replicaset-controller's pod creation in the manager's log")
		}
		return nil
	})
	if pods, _ := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatalf("%d pods created without the replicaset-controller's role", len(pods.Items))
	}
	restore()
	framework.Eventually(t, time.Minute, "pods once the role is bound again", func() error {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 2 {
			return fmt.Errorf("%d pods (%v)", len(pods.Items), err)
		}
		return nil
	})
}

// TestNamespaceStormLeavesRolloutsAlone: each controller has its own rate budget, so
// 60 namespaces deleted at once do not hold up a Deployment rolling out meanwhile.
// The budget is cut to 5 QPS: shared with the namespace controller (a list and a
// delete per resource type per namespace), the rollout would wait for thousands of
// requests; on its own it needs a handful.
func TestNamespaceStormLeavesRolloutsAlone(t *testing.T) {
	ctx := context.Background()
	var storm []string
	for i := range 60 {
		ns, err := env.Namespace(ctx, fmt.Sprintf("storm%d-", i))
		if err != nil {
			t.Fatal(err)
		}
		storm = append(storm, ns)
	}
	ns, err := env.Namespace(ctx, "rollout-")
	if err != nil {
		t.Fatal(err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	framework.FakeKubelet(kctx, env.Client, ns, nil)
	startManager(t, env.WriteKubeconfig(t), "--leader-elect=false", "--controllers=deployment,replicaset,namespace",
		"--kube-api-qps=5", "--kube-api-burst=5")
	var wg sync.WaitGroup
	for _, n := range storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = env.Client.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{})
		}()
	}
	wg.Wait()
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, framework.Deployment(ns, "during-storm", 10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 40*time.Second, "rollout during the namespace storm", rolledOut(ctx, ns, "during-storm", 10))
	framework.Eventually(t, 3*time.Minute, "the storm's namespaces gone", func() error {
		left := 0
		for _, n := range storm {
			if _, err := env.Client.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d of %d namespaces left", left, len(storm))
		}
		return nil
	})
}
