package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/component-base/version"

	cp "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
	"github.com/kubeparts/kubeparts/internal/controllernames"
	"github.com/kubeparts/kubeparts/internal/restarts"
)

// leaseOf names the leader-election Leases (kube-system) each binary takes, in
// the order they are looked at. kubeparts-scheduler takes its own Lease as a
// second scheduler and the stock one when it replaces the default scheduler.
var leaseOf = map[string][]string{
	"kube-controller-manager":      {"kube-controller-manager"},
	"kubeparts-controller-manager": {"kubeparts-controller-manager"},
	"kube-scheduler":               {"kube-scheduler"},
	"kubeparts-scheduler":          {"kubeparts-scheduler", "kube-scheduler"},
}

// roleOf is the role a binary found only through its Lease plays.
var roleOf = map[string]string{
	"kube-controller-manager": cp.RoleControllerManager, "kubeparts-controller-manager": cp.RoleControllerManager,
	"kube-scheduler": cp.RoleScheduler, "kubeparts-scheduler": cp.RoleScheduler,
}

func implementationOf(binary string) string {
	if strings.HasPrefix(binary, "kubeparts-") {
		return cp.ImplementationKubeparts
	}
	return cp.ImplementationStock
}

// View computes the control-plane resources.
type View struct {
	client    kubernetes.Interface
	endpoints []endpoint
	probe     *http.Client
	etcd      *etcdView
	timeout   time.Duration
	now       func() time.Time
	restarts  string // the supervisor's restarts file, "" for none
}

// New builds the view from validated options.
func (o *Options) New(client kubernetes.Interface, _ *restclient.Config) (*View, error) {
	v := &View{client: client, timeout: o.ProbeTimeout, now: time.Now, restarts: o.RestartsFile}
	for _, e := range o.Endpoints {
		ep, err := parseEndpoint(e)
		if err != nil {
			return nil, err
		}
		v.endpoints = append(v.endpoints, ep)
	}
	// Health probes only: the components serve self-signed certificates on
	// loopback (kube-scheduler, kube-controller-manager), and /readyz is open
	// to anonymous requests there, so there is no identity to verify.
	v.probe = &http.Client{Timeout: o.ProbeTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe of a loopback endpoint
	}}
	if len(o.EtcdServers) > 0 {
		e, err := newEtcdView(o)
		if err != nil {
			return nil, err
		}
		v.etcd = e
	}
	return v, nil
}

// probeReadyz asks one /readyz.
func (v *View) probeReadyz(ctx context.Context, url string) (health, msg string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return cp.Unknown, err.Error()
	}
	resp, err := v.probe.Do(req)
	if err != nil {
		return cp.Unhealthy, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cp.Unhealthy, fmt.Sprintf("%s answered %s", url, resp.Status)
	}
	return cp.Healthy, ""
}

// Components computes every Component, sorted by name.
func (v *View) Components(ctx context.Context) ([]cp.Component, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout+2*time.Second)
	defer cancel()
	leases, err := v.client.CoordinationV1().Leases(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing leases: %w", err))
	}
	byName := map[string]*coordinationv1.Lease{}
	for i := range leases.Items {
		byName[leases.Items[i].Name] = &leases.Items[i]
	}

	var mu sync.Mutex
	var out []cp.Component
	add := func(c cp.Component) { mu.Lock(); out = append(out, c); mu.Unlock() }
	var wg sync.WaitGroup

	// Configured endpoints, probed in parallel; the copies of one binary (one per
	// control-plane host) make one component.
	configured := map[string][]endpoint{}
	var binaries []string
	for _, ep := range v.endpoints {
		if configured[ep.binary] == nil {
			binaries = append(binaries, ep.binary)
		}
		configured[ep.binary] = append(configured[ep.binary], ep)
	}
	for _, binary := range binaries {
		eps := configured[binary]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := v.leased(binary, eps[0].role, byName)
			c.Status.Instances = make([]cp.ComponentInstance, len(eps))
			var probes sync.WaitGroup
			for i, ep := range eps {
				probes.Add(1)
				go func() {
					defer probes.Done()
					inst := cp.ComponentInstance{Name: ep.instance, Endpoint: ep.url}
					inst.Health, inst.Message = v.probeReadyz(ctx, ep.url)
					inst.Leader = c.Status.Leader != "" && (len(eps) == 1 || strings.HasPrefix(c.Status.Leader, ep.instance+"_"))
					c.Status.Instances[i] = inst
				}()
			}
			probes.Wait()
			c.Status.Health, c.Status.Message = instancesHealth(c.Status.Instances)
			if binary == self {
				// Its copies run this binary's version; the one answering is ready.
				c.Status.Version = version.Get().GitVersion
			}
			add(c)
		}()
	}
	// Components found only by their Lease: leader known, health not. A Lease a
	// configured binary takes is that binary's (kubeparts-scheduler replacing the
	// stock scheduler holds kube-scheduler).
	claimed := map[string]bool{}
	for binary := range configured {
		for _, l := range leaseOf[binary] {
			claimed[l] = true
		}
	}
	for binary := range leaseOf {
		if configured[binary] != nil {
			continue
		}
		if l := v.currentLease(binary, byName); l != nil && claimed[l.Name] {
			continue
		}
		if l := v.currentLease(binary, byName); l != nil && !(binary == "kubeparts-scheduler" && l.Name == "kube-scheduler") {
			c := v.leased(binary, roleOf[binary], byName)
			c.Status.Health, c.Status.Message = cp.Unknown, "no endpoint configured (--control-plane-component); leader from its Lease"
			add(c)
		}
	}
	wg.Add(2)
	go func() { defer wg.Done(); add(v.apiserver(ctx, leases.Items)) }()
	go func() {
		defer wg.Done()
		if c, ok := v.nodeAgents(ctx); ok {
			add(c)
		}
	}()
	if v.etcd != nil {
		wg.Add(1)
		go func() { defer wg.Done(); add(v.etcdComponent(ctx)) }()
	}
	wg.Wait()
	if configured[self] == nil {
		out = append(out, v.self())
	}
	v.addRestarts(out)
	out = append(out, controllers(out)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// addRestarts fills each copy's restarts from the supervisor's record (a copy is
// matched by its binary and host; a lone copy by its binary).
func (v *View) addRestarts(components []cp.Component) {
	if v.restarts == "" {
		return
	}
	records, err := restarts.Read(v.restarts)
	if err != nil || len(records) == 0 {
		return
	}
	for ci := range components {
		s := &components[ci].Status
		s.Restarts = 0
		for i := range s.Instances {
			inst := &s.Instances[i]
			inst.Restarts = restarts.Of(records, s.Binary, inst.Name, len(s.Instances) == 1)
			s.Restarts += inst.Restarts
		}
	}
}

// instancesHealth is a component's health from its copies': that of its only copy;
// of several, Healthy while the leader's copy is (or, with no leader known, any copy
// is), naming the copies that are not.
func instancesHealth(in []cp.ComponentInstance) (string, string) {
	if len(in) == 1 {
		return in[0].Health, in[0].Message
	}
	health := cp.Unhealthy
	var bad []string
	leaderKnown := false
	for _, i := range in {
		leaderKnown = leaderKnown || i.Leader
	}
	for _, i := range in {
		if i.Health == cp.Healthy && (i.Leader || !leaderKnown) {
			health = cp.Healthy
		}
		if i.Health != cp.Healthy {
			bad = append(bad, i.Name+": "+i.Message)
		}
	}
	if len(bad) == 0 {
		return health, ""
	}
	return health, fmt.Sprintf("%d of %d copies not healthy (%s)", len(bad), len(in), strings.Join(bad, "; "))
}

// currentLease returns the binary's Lease, when one is held and not expired.
func (v *View) currentLease(binary string, leases map[string]*coordinationv1.Lease) *coordinationv1.Lease {
	for _, name := range leaseOf[binary] {
		l := leases[name]
		if l == nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		if v.now().Sub(l.Spec.RenewTime.Time) > time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
			continue // expired: nobody leads under this name
		}
		return l
	}
	return nil
}

// leased builds a component with its leader, if its Lease is current.
func (v *View) leased(binary, role string, leases map[string]*coordinationv1.Lease) cp.Component {
	c := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: binary}, Status: cp.ComponentStatus{
		Role: role, Implementation: implementationOf(binary), Binary: binary,
	}}
	if l := v.currentLease(binary, leases); l != nil {
		c.Status.Leader = *l.Spec.HolderIdentity
		c.Status.LeaseName = l.Namespace + "/" + l.Name
		if l.Spec.AcquireTime != nil {
			t := metav1.NewTime(l.Spec.AcquireTime.Time)
			c.Status.Since = &t
		}
	}
	return c
}

// apiserver reports kube-apiserver: its instances from their identity
// Leases, its version and readiness as seen through the kubeconfig.
func (v *View) apiserver(ctx context.Context, leases []coordinationv1.Lease) cp.Component {
	c := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver"}, Status: cp.ComponentStatus{
		Role: cp.RoleAPIServer, Implementation: cp.ImplementationStock, Binary: "kube-apiserver",
	}}
	if info, err := v.client.Discovery().ServerVersion(); err == nil {
		c.Status.Version = info.GitVersion
	}
	c.Status.Health, c.Status.Message = cp.Healthy, ""
	if _, err := v.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		c.Status.Health, c.Status.Message = cp.Unhealthy, err.Error()
	}
	for _, l := range leases {
		if l.Labels["apiserver.kubernetes.io/identity"] != "kube-apiserver" || l.Spec.HolderIdentity == nil {
			continue
		}
		// Named by its host, as the other copies (the identity's hash says nothing).
		name := *l.Spec.HolderIdentity
		if host := l.Labels["kubernetes.io/hostname"]; host != "" {
			name = host
		}
		inst := cp.ComponentInstance{Name: name, Health: cp.Healthy, Version: c.Status.Version}
		if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil ||
			v.now().Sub(l.Spec.RenewTime.Time) > time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
			inst.Health, inst.Message = cp.Unhealthy, "identity lease not renewed"
		}
		c.Status.Instances = append(c.Status.Instances, inst)
	}
	sort.Slice(c.Status.Instances, func(i, j int) bool { return c.Status.Instances[i].Name < c.Status.Instances[j].Name })
	return c
}

// self is this binary. Its copies, when --control-plane-component names them,
// make its row as any other component's; otherwise it reports only itself.
const self = "kubeparts-apiserver"

// self reports kubeparts-apiserver: it is answering this request.
func (v *View) self() cp.Component {
	return cp.Component{ObjectMeta: metav1.ObjectMeta{Name: self}, Status: cp.ComponentStatus{
		Role: cp.RoleAPIExtension, Implementation: cp.ImplementationKubeparts, Binary: self,
		Version: version.Get().GitVersion, Health: cp.Healthy,
	}}
}

// nodeAgents reports the nodes' agents (kubelet or kubeparts-nodeagent) as
// one component whose instances are the nodes.
func (v *View) nodeAgents(ctx context.Context) (cp.Component, bool) {
	nodes, err := v.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil || len(nodes.Items) == 0 {
		return cp.Component{}, false
	}
	c := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: "node-agents"}, Status: cp.ComponentStatus{Role: cp.RoleNodeAgent}}
	impls, versions, notReady := map[string]bool{}, map[string]bool{}, 0
	for _, n := range nodes.Items {
		ver := n.Status.NodeInfo.KubeletVersion
		impl := cp.ImplementationStock
		if strings.Contains(ver, "kubeparts") { // our node agent stamps its version so
			impl = cp.ImplementationKubeparts
		}
		impls[impl], versions[ver] = true, true
		inst := cp.ComponentInstance{Name: n.Name, Version: ver, Health: cp.Unknown, Message: "no Ready condition"}
		for _, cond := range n.Status.Conditions {
			if cond.Type != corev1.NodeReady {
				continue
			}
			inst.Health, inst.Message = cp.Unhealthy, cond.Reason+": "+cond.Message
			if cond.Status == corev1.ConditionTrue {
				inst.Health, inst.Message = cp.Healthy, ""
			}
		}
		if inst.Health != cp.Healthy {
			notReady++
		}
		c.Status.Instances = append(c.Status.Instances, inst)
	}
	c.Status.Implementation = joinKeys(impls)
	c.Status.Binary = map[string]string{cp.ImplementationStock: "kubelet", cp.ImplementationKubeparts: "kubeparts-nodeagent"}[c.Status.Implementation]
	c.Status.Version = joinKeys(versions)
	c.Status.Health = cp.Healthy
	if notReady > 0 {
		c.Status.Health, c.Status.Message = cp.Unhealthy, fmt.Sprintf("%d of %d nodes not Ready", notReady, len(nodes.Items))
	}
	return c, true
}

func joinKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// controllers reports each controller kubeparts implements: run by
// kubeparts-controller-manager when it is present (it runs all of them by
// default), else by the stock manager; health is the manager's.
func controllers(found []cp.Component) []cp.Component {
	var manager *cp.Component
	for i := range found {
		if found[i].Status.Role != cp.RoleControllerManager {
			continue
		}
		if manager == nil || found[i].Status.Implementation == cp.ImplementationKubeparts {
			manager = &found[i]
		}
	}
	var out []cp.Component
	for _, name := range controllernames.StockNames() {
		c := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: cp.ComponentStatus{
			Role: cp.RoleController, Implementation: cp.ImplementationStock, Binary: "kube-controller-manager",
			Health: cp.Unknown, Message: "no controller manager found",
		}}
		if manager != nil {
			c.Status.Implementation, c.Status.Binary = manager.Status.Implementation, manager.Status.Binary
			c.Status.Health, c.Status.Message, c.Status.Leader, c.Status.Since = manager.Status.Health, manager.Status.Message, manager.Status.Leader, manager.Status.Since
		}
		out = append(out, c)
	}
	return out
}
