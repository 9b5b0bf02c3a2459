package localcluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

func TestDNSServiceIP(t *testing.T) {
	for _, tc := range []struct{ cidr, want string }{
		{"10.96.0.0/12", "10.96.0.10"},
		{"10.100.0.0/16", "10.100.0.10"},
		{"192.168.7.0/24", "192.168.7.10"},
		{"10.96.3.4/12", "10.96.0.10"}, // host bits are ignored
		{"172.30.0.240/28", "172.30.0.250"},
		{"fd00:10:96::/112", "fd00:10:96::a"},
		{"10.0.0.0/29", "<nil>"}, // only 8 addresses
	} {
		_, cidr, err := net.ParseCIDR(tc.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dnsServiceIP(cidr).String(); got != tc.want {
			t.Errorf("dnsServiceIP(%s) = %s, want %s", tc.cidr, got, tc.want)
		}
	}
}

func TestApplyDNSIsIdempotent(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	dnsIP := net.ParseIP("10.96.0.10")
	for i := range 2 {
		if err := applyDNS(ctx, client, dnsIP, "cluster.test", dnsReplicas); err != nil {
			t.Fatalf("applyDNS #%d: %v", i+1, err)
		}
	}
	ns := metav1.NamespaceSystem

	svc, err := client.CoreV1().Services(ns).Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("kube-dns ClusterIP = %s", svc.Spec.ClusterIP)
	}
	if svc.Spec.Selector["k8s-app"] != "kube-dns" || len(svc.Spec.Ports) != 3 || svc.Annotations["prometheus.io/port"] != "9153" {
		t.Errorf("kube-dns Service = %+v", svc)
	}

	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubernetes cluster.test in-addr.arpa ip6.arpa {", "forward . /etc/resolv.conf", "disable success cluster.test", "loop"} {
		if !strings.Contains(cm.Data["Corefile"], want) {
			t.Errorf("Corefile lacks %q:\n%s", want, cm.Data["Corefile"])
		}
	}

	d, err := client.AppsV1().Deployments(ns).Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if c := pod.Containers[0]; c.Image != CoreDNSImage || *d.Spec.Replicas != dnsReplicas ||
		pod.DNSPolicy != corev1.DNSDefault || pod.ServiceAccountName != "coredns" ||
		c.SecurityContext.Capabilities.Add[0] != "NET_BIND_SERVICE" || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("coredns Deployment = %+v", d.Spec)
	}
	if d.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" || d.Spec.Template.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("selector %v, pod template labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}

	role, err := client.RbacV1().ClusterRoles().Get(ctx, "system:coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 2 || role.Rules[1].Resources[0] != "endpointslices" {
		t.Errorf("system:coredns rules = %+v", role.Rules)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "system:coredns", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "coredns", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}

// TestApplyDNSKeepsReplicas: as kubeadm, a scaled Deployment stays scaled.
func TestApplyDNSKeepsReplicas(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	dnsIP := net.ParseIP("10.96.0.10")
	if err := applyDNS(ctx, client, dnsIP, "cluster.local", 1); err != nil {
		t.Fatal(err)
	}
	deployments := client.AppsV1().Deployments(metav1.NamespaceSystem)
	d, _ := deployments.Get(ctx, "coredns", metav1.GetOptions{})
	*d.Spec.Replicas = 3
	if _, err := deployments.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := applyDNS(ctx, client, dnsIP, "cluster.local", 1); err != nil {
		t.Fatal(err)
	}
	if d, _ = deployments.Get(ctx, "coredns", metav1.GetOptions{}); *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d after a second applyDNS, want the scaled 3", *d.Spec.Replicas)
	}
}

func TestApplyDNSRejectsOtherClusterIP(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.53"},
	})
	err := applyDNS(ctx, client, net.ParseIP("10.96.0.10"), "cluster.local", dnsReplicas)
	if err == nil || !strings.Contains(err.Error(), "10.96.0.53") {
		t.Fatalf("applyDNS with kube-dns at another ClusterIP: %v, want an error naming it", err)
	}
}

func TestCoreDNSImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "coredns")
	if err := os.WriteFile(bin, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := corednsImage(bin)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != CoreDNSImage || img.User != "65532:65532" || len(img.Entrypoint) != 1 || img.Entrypoint[0] != "/coredns" {
		t.Fatalf("image = %+v", img)
	}
	if f := img.Files[0]; f.Path != "coredns" || f.Xattrs["security.capability"] != ociimage.CapabilityXattr(capNetBindService) {
		t.Fatalf("coredns file = %s %v", f.Path, f.Xattrs)
	}
	if err := ociimage.Write(&strings.Builder{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := corednsImage(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("corednsImage of a missing binary succeeded")
	}
}
