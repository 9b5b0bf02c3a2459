package nodeagent

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/events"
	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// TestKubeclient drives every call of the agent's slim client against the
// real kube-apiserver, in both encodings the agent may speak: what it sends
// arrives and what comes back decodes, errors keep their API status.
func TestKubeclient(t *testing.T) {
	for _, contentType := range []string{"application/vnd.kubernetes.protobuf", "application/json"} {
		t.Run(contentType, func(t *testing.T) {
			cfg := rest.CopyConfig(env.Config)
			cfg.ContentType = contentType
			c, err := kubeclient.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ns := map[string]string{"application/json": "kubeclient-json"}[contentType]
			if ns == "" {
				ns = "kubeclient-proto"
			}
			if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			testKubeclient(ctx, t, c, ns)
		})
	}
}

func testKubeclient(ctx context.Context, t *testing.T, c kubeclient.Interface, ns string) {
	core := c.CoreV1()
	// Pods: watch sees a create, the status subresource takes a phase, a
	// missing pod is NotFound.
	w, err := core.Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	created, err := core.Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil || created.UID == "" {
		t.Fatalf("create pod: %v %+v", err, created)
	}
	select {
	case ev := <-w.ResultChan():
		if p, ok := ev.Object.(*corev1.Pod); ev.Type != watch.Added || !ok || p.Name != "p" {
			t.Errorf("watch event %s %T, want ADDED pod p", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
	created.Status.Phase = corev1.PodRunning
	if updated, err := core.Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil || updated.Status.Phase != corev1.PodRunning {
		t.Errorf("update status: %v", err)
	}
	if list, err := core.Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=p"}); err != nil || len(list.Items) != 1 {
		t.Errorf("list by field selector: %v %v", err, list)
	}
	if err := core.Pods(ns).Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &created.UID}}); err != nil {
		t.Errorf("delete with UID precondition: %v", err)
	}
	if _, err := core.Pods(ns).Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get deleted pod: %v, want NotFound", err)
	}

	// Reads for env and volumes.
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm, err := core.ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
		t.Errorf("get configmap: %v %v", err, cm)
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte("v")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s, err := core.Secrets(ns).Get(ctx, "s", metav1.GetOptions{}); err != nil || string(s.Data["k"]) != "v" {
		t.Errorf("get secret: %v", err)
	}

	// TokenRequest, then TokenReview of the token it returned.
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := core.ServiceAccounts(ns).CreateToken(ctx, "sa", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token == "" {
		t.Fatalf("create token: %v", err)
	}
	review, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	if want := "system:serviceaccount:" + ns + ":sa"; err != nil || !review.Status.Authenticated || review.Status.User.Username != want {
		t.Errorf("token review: %v %+v, want %s authenticated", err, review.Status, want)
	}
	sar, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "system:serviceaccount:" + ns + ":sa", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy"},
	}}, metav1.CreateOptions{})
	if err != nil || sar.Status.Allowed {
		t.Errorf("subject access review: %v %+v, want denied", err, sar.Status)
	}

	// Node registration and status; the Lease heartbeat.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-node"}}
	if _, err := core.Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{})
	})
	got, err := core.Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	if got, err = core.Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil || len(got.Status.Conditions) != 1 {
		t.Errorf("node status: %v", err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a")}}
	if _, err := c.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := c.CoordinationV1().Leases(ns).Get(ctx, "l", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.HolderIdentity = ptr.To("b")
	if l, err = c.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{}); err != nil || *l.Spec.HolderIdentity != "b" {
		t.Errorf("lease update: %v", err)
	}
	stale := l.DeepCopy()
	stale.ResourceVersion = "1"
	if _, err := c.CoordinationV1().Leases(ns).Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale lease update: %v, want Conflict", err)
	}

	// Events as the agent writes them: a repeat patches the count of the
	// first (a JSON merge patch the real apiserver must accept).
	b := events.NewBroadcaster(core)
	go b.Run(ctx)
	rec := b.NewRecorder(corev1.EventSource{Component: "kubelet", Host: node.Name})
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: "p", UID: created.UID}
	rec.Eventf(ref, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", "c")
	rec.Eventf(ref, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", "c")
	framework.Eventually(t, 30*time.Second, "one BackOff event counted twice", func() error {
		list, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=BackOff"})
		if err != nil {
			return err
		}
		if len(list.Items) != 1 || list.Items[0].Count != 2 || list.Items[0].Source.Host != node.Name {
			return fmt.Errorf("events %+v", list.Items)
		}
		return nil
	})
}
