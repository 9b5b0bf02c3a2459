package localcluster

import (
	"context"
	"fmt"
	"math/big"
	"net"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

// Cluster DNS as kubeadm's CoreDNS addon installs it (cmd/kubeadm/app/phases/addons/dns
// of Kubernetes v1.36): the same objects, names, labels, Corefile and pod spec. The
// differences: the image is built locally from bin/coredns (hack/upstream/build.sh
// builds CoreDNS v1.15.0, kubeadm v1.36 deploys v1.14.2) and no Corefile migration on
// upgrade, the ConfigMap is simply rewritten as on `kubeadm init`.
const (
	// CoreDNSImage is the name the CoreDNS image built from bin/coredns is imported
	// under; the tag is the version hack/upstream/coredns builds.
	CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.15.0"

	corednsName        = "coredns"        // Deployment, ConfigMap, ServiceAccount
	corednsClusterRole = "system:coredns" // ClusterRole and ClusterRoleBinding
	kubeDNSService     = "kube-dns"
	// corednsUser is distroless' nonroot user, the user of the upstream CoreDNS image.
	corednsUser = 65532
	// dnsReplicas is kubeadm's replica count for a new Deployment.
	dnsReplicas = 2
	// capNetBindService is CAP_NET_BIND_SERVICE's number in linux/capability.h.
	capNetBindService = 10
)

// corednsLabels select the CoreDNS pods; kube-dns is the label kubeadm and the kube-dns
// addon before it use, which tools and docs look for.
var corednsLabels = map[string]string{"k8s-app": "kube-dns"}

// corednsImage is bin/coredns at /coredns, run as uid/gid 65532 like the upstream image
// (distroless static, USER nonroot). The binary carries the file capability
// cap_net_bind_service=+ep, as the upstream Dockerfile's setcap gives it: a non-root
// process loses the capabilities the runtime grants it when it execs, so without it
// CoreDNS could not bind port 53 although the pod adds NET_BIND_SERVICE. The pod's
// capabilities still decide: the file capability only yields what the container's
// bounding and permitted sets hold.
func corednsImage(binPath string) (ociimage.Image, error) {
	img := ociimage.Image{
		Name:       CoreDNSImage,
		Entrypoint: []string{"/coredns"},
		User:       fmt.Sprintf("%d:%d", corednsUser, corednsUser),
	}
	data, err := os.ReadFile(binPath)
	if err != nil {
		return img, err
	}
	img.Files = []ociimage.File{
		{Path: "coredns", Mode: 0o755, Data: data, Xattrs: map[string]string{
			"security.capability": ociimage.CapabilityXattr(capNetBindService),
		}},
		// As in distroless: the user has a name and a group of its own.
		{Path: "etc/passwd", Mode: 0o644, Data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", corednsUser, corednsUser)},
		{Path: "etc/group", Mode: 0o644, Data: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", corednsUser)},
	}
	return img, nil
}

// dnsIP is the cluster's kube-dns Service address.
func (p *plan) dnsIP() net.IP { return dnsServiceIP(p.layout.ServiceCIDR) }

// dnsServiceIP is the cluster DNS Service's address, the tenth of the Service range
// (10.96.0.0/12 gives 10.96.0.10), as kubeadm picks it. It is nil when the range
// is too small to hold it.
func dnsServiceIP(serviceCIDR *net.IPNet) net.IP {
	base := serviceCIDR.IP.Mask(serviceCIDR.Mask)
	if v4 := base.To4(); v4 != nil {
		base = v4
	}
	ones, bits := serviceCIDR.Mask.Size()
	if bits == 0 || bits != 8*len(base) || bits-ones < 4 { // fewer than 16 addresses
		return nil
	}
	ip := new(big.Int).Add(new(big.Int).SetBytes(base), big.NewInt(10)).Bytes()
	out := make(net.IP, len(base))
	copy(out[len(out)-len(ip):], ip)
	return out
}

// corefile is kubeadm's Corefile for the cluster domain: cluster names from the API
// (kubernetes), everything else forwarded to the node's resolvers (the pod has
// dnsPolicy Default, so /etc/resolv.conf is the node's), cached except for the cluster
// domain.
//
// The upstream in /etc/resolv.conf may answer nothing (no network): forward then
// fails only the queries it forwards; CoreDNS starts, health and ready answer, cluster
// names resolve. loop stops CoreDNS only when its probe query comes back to itself,
// i.e. when the node's resolv.conf names a local stub resolver (127.0.0.53) that
// forwards to this CoreDNS; a nameserver that does not answer is no loop.
func corefile(clusterDomain string) string {
	return fmt.Sprintf(`.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes %[1]s in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success %[1]s
       disable denial %[1]s
    }
    loop
    reload
    loadbalance
}
`, clusterDomain)
}

// applyDNS creates or updates kubeadm's CoreDNS addon: ServiceAccount, ClusterRole and
// ClusterRoleBinding system:coredns, ConfigMap and Deployment coredns, Service kube-dns
// at dnsIP. It is idempotent. replicas is the count of a new Deployment; an existing one
// keeps its count, as with kubeadm (someone may have scaled it). An existing kube-dns
// Service must already have dnsIP: a ClusterIP cannot change.
func applyDNS(ctx context.Context, client kubernetes.Interface, dnsIP net.IP, clusterDomain string, replicas int32) error {
	ns := metav1.NamespaceSystem
	core, rbac := client.CoreV1(), client.RbacV1()

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: ns}}
	if err := upsert(ctx, sa, core.ServiceAccounts(ns)); err != nil {
		return fmt.Errorf("ServiceAccount %s/%s: %w", ns, sa.Name, err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: corednsClusterRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	if err := upsert(ctx, role, rbac.ClusterRoles()); err != nil {
		return fmt.Errorf("ClusterRole %s: %w", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: corednsClusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: corednsClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: corednsName, Namespace: ns}},
	}
	if err := upsert(ctx, binding, rbac.ClusterRoleBindings()); err != nil {
		return fmt.Errorf("ClusterRoleBinding %s: %w", binding.Name, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: ns},
		Data:       map[string]string{"Corefile": corefile(clusterDomain)},
	}
	if err := upsert(ctx, cm, core.ConfigMaps(ns)); err != nil {
		return fmt.Errorf("ConfigMap %s/%s: %w", ns, cm.Name, err)
	}

	deployments := client.AppsV1().Deployments(ns)
	if cur, err := deployments.Get(ctx, corednsName, metav1.GetOptions{}); err == nil && cur.Spec.Replicas != nil {
		replicas = *cur.Spec.Replicas
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deployment %s/%s: %w", ns, corednsName, err)
	}
	if err := upsert(ctx, corednsDeployment(replicas), deployments); err != nil {
		return fmt.Errorf("deployment %s/%s: %w", ns, corednsName, err)
	}
	return applyDNSService(ctx, client, dnsIP)
}

// corednsDeployment is kubeadm's CoreDNS Deployment running CoreDNSImage.
func corednsDeployment(replicas int32) *appsv1.Deployment {
	maxUnavailable := intstr.FromInt32(1)
	port := func(name string, p int32, proto corev1.Protocol) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: p, Protocol: proto}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: metav1.NamespaceSystem, Labels: corednsLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable},
			},
			Selector: &metav1.LabelSelector{MatchLabels: corednsLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: corednsLabels},
				Spec: corev1.PodSpec{
					PriorityClassName:  "system-cluster-critical",
					ServiceAccountName: corednsName,
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
									Key: "k8s-app", Operator: metav1.LabelSelectorOpIn, Values: []string{"kube-dns"},
								}}},
								TopologyKey: corev1.LabelHostname,
							},
						}},
					}},
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
					},
					NodeSelector: map[string]string{corev1.LabelOSStable: "linux"},
					Containers: []corev1.Container{{
						Name:  "coredns",
						Image: CoreDNSImage,
						// As kubeadm. The image is imported into every node's containerd
						// before pods run and its tag is not latest, so nothing is pulled;
						// a user may point the Deployment at a registry image.
						ImagePullPolicy: corev1.PullIfNotPresent,
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("100m"),
								corev1.ResourceMemory: resource.MustParse("70Mi"),
							},
						},
						Args:         []string{"-conf", "/etc/coredns/Corefile"},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
						Ports: []corev1.ContainerPort{
							port("dns", 53, corev1.ProtocolUDP),
							port("dns-tcp", 53, corev1.ProtocolTCP),
							port("metrics", 9153, corev1.ProtocolTCP),
							port("liveness-probe", 8080, corev1.ProtocolTCP),
							port("readiness-probe", 8181, corev1.ProtocolTCP),
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/health", Port: intstr.FromString("liveness-probe"), Scheme: corev1.URISchemeHTTP,
							}},
							InitialDelaySeconds: 60, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 5,
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/ready", Port: intstr.FromString("readiness-probe"), Scheme: corev1.URISchemeHTTP,
							}},
						},
						// Non-root (the image's user) binding port 53: NET_BIND_SERVICE is
						// the only capability left.
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{
								Add:  []corev1.Capability{"NET_BIND_SERVICE"},
								Drop: []corev1.Capability{"ALL"},
							},
							ReadOnlyRootFilesystem: ptr.To(true),
						},
					}},
					// The node's resolvers: the upstream of forward . /etc/resolv.conf.
					DNSPolicy: corev1.DNSDefault,
					Volumes: []corev1.Volume{{
						Name: "config-volume",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: corednsName},
							Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
						}},
					}},
				},
			},
		},
	}
}

// applyDNSService creates the kube-dns Service at dnsIP or updates the existing one,
// which must have that address: a Service's ClusterIP is immutable, and pods' resolvers
// name dnsIP.
func applyDNSService(ctx context.Context, client kubernetes.Interface, dnsIP net.IP) error {
	ns := metav1.NamespaceSystem
	services := client.CoreV1().Services(ns)
	port := func(name string, p int32, proto corev1.Protocol) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, Protocol: proto, TargetPort: intstr.FromInt32(p)}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      kubeDNSService,
			Namespace: ns,
			Labels: map[string]string{
				"k8s-app":                       "kube-dns",
				"kubernetes.io/cluster-service": "true",
				"kubernetes.io/name":            "CoreDNS",
			},
			Annotations: map[string]string{
				"prometheus.io/port":   "9153",
				"prometheus.io/scrape": "true",
			},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: dnsIP.String(),
			Ports: []corev1.ServicePort{
				port("dns", 53, corev1.ProtocolUDP),
				port("dns-tcp", 53, corev1.ProtocolTCP),
				port("metrics", 9153, corev1.ProtocolTCP),
			},
			Selector: corednsLabels,
		},
	}
	// Read first: kube-apiserver allocates the ClusterIP before it checks the
	// name, so creating an existing kube-dns fails as "already allocated".
	cur, err := services.Get(ctx, kubeDNSService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = services.Create(ctx, svc, metav1.CreateOptions{})
		switch {
		case err == nil:
			return nil
		case apierrors.IsInvalid(err):
			// Typically "provided IP is already allocated": another Service holds dnsIP.
			return fmt.Errorf("service %s/%s with ClusterIP %s: %w", ns, kubeDNSService, dnsIP, err)
		case !apierrors.IsAlreadyExists(err):
			return fmt.Errorf("service %s/%s: %w", ns, kubeDNSService, err)
		}
		cur, err = services.Get(ctx, kubeDNSService, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("service %s/%s: %w", ns, kubeDNSService, err)
	}
	if got := net.ParseIP(cur.Spec.ClusterIP); got == nil || !got.Equal(dnsIP) {
		return fmt.Errorf("service %s/%s has ClusterIP %q, the cluster DNS address is %s: a ClusterIP cannot change; delete the Service (or the cluster's data) to recreate it",
			ns, kubeDNSService, cur.Spec.ClusterIP, dnsIP)
	}
	// Keep what the apiserver allocated and defaulted that an update may not change.
	svc.ResourceVersion = cur.ResourceVersion
	svc.Spec.ClusterIP = cur.Spec.ClusterIP
	svc.Spec.ClusterIPs = cur.Spec.ClusterIPs
	svc.Spec.IPFamilies = cur.Spec.IPFamilies
	svc.Spec.IPFamilyPolicy = cur.Spec.IPFamilyPolicy
	if _, err := services.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("service %s/%s: %w", ns, kubeDNSService, err)
	}
	return nil
}
