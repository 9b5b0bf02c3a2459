// Package app wires kubeparts-controller-manager: flags named as kube-controller-manager
// names them, a controller-runtime manager with protobuf clients, Lease leader election
// under its own name, secure /metrics, /healthz and /readyz, and the controllers chosen
// by --controllers.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubeparts/kubeparts/controllers/daemonset"
	"github.com/kubeparts/kubeparts/controllers/deployment"
	"github.com/kubeparts/kubeparts/controllers/namespace"
	"github.com/kubeparts/kubeparts/controllers/nodelifecycle"
	"github.com/kubeparts/kubeparts/controllers/podgroup"
	"github.com/kubeparts/kubeparts/controllers/replicaset"
	"github.com/kubeparts/kubeparts/controllers/tainteviction"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// LeaseName is the leader-election Lease; never kube-controller-manager's, so both run
// side by side.
const LeaseName = "kubeparts-controller-manager"

// Options are the command-line options.
type Options struct {
	Kubeconfig         string
	Controllers        []string
	KubeAPIQPS         float32
	KubeAPIBurst       int
	KubeAPIContentType string
	BindAddress        string
	SecurePort         int
	HealthProbeAddress string
	PprofAddress       string
	CertDir            string
	LeaderElect        bool
	// UseServiceAccountCredentials runs each controller as kube-system/<client name>.
	UseServiceAccountCredentials bool
	LeaseDuration                time.Duration
	RenewDeadline                time.Duration
	RetryPeriod                  time.Duration
	LeaderElectNS                string
	LeaderElectName              string
	ConcurrentRSSyncs            int
	ConcurrentDSyncs             int
	ConcurrentNSSyncs            int
	ConcurrentDSSyncs            int
	NodeLifecycle                nodelifecycle.Options
}

// AddFlags registers the flags with kube-controller-manager's names and defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; in-cluster config when empty")
	fs.StringSliceVar(&o.Controllers, "controllers", []string{"*"}, "controllers to run: '*' for all on by default, 'name' to enable, '-name' to disable; names as kube-controller-manager's (old short names accepted)")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", 20, "QPS to use while talking with kube-apiserver")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 30, "burst to use while talking with kube-apiserver")
	fs.StringVar(&o.KubeAPIContentType, "kube-api-content-type", "application/vnd.kubernetes.protobuf", "content type of requests sent to apiserver (protobuf is used for built-in types, JSON for custom resources)")
	fs.StringVar(&o.BindAddress, "bind-address", "0.0.0.0", "address of the secure /metrics endpoint")
	fs.IntVar(&o.SecurePort, "secure-port", 10267, "port of the secure /metrics endpoint (authenticated and authorized through the apiserver); 0 disables it")
	fs.StringVar(&o.HealthProbeAddress, "health-probe-bind-address", "127.0.0.1:10268", "address of the /healthz and /readyz endpoints; 0 disables them")
	fs.StringVar(&o.PprofAddress, "pprof-bind-address", "0", "address of an unauthenticated /debug/pprof endpoint for profiling (keep it on loopback); 0 disables it")
	fs.StringVar(&o.CertDir, "cert-dir", "", "directory of tls.crt/tls.key for the secure port; a self-signed pair is generated when empty")
	fs.BoolVar(&o.UseServiceAccountCredentials, "use-service-account-credentials", false, "run each controller under its own ServiceAccount in kube-system (tokens from the TokenRequest API), as the stock system:controller:* ClusterRoles expect; the manager's own identity then only reads, creates the ServiceAccounts and requests their tokens")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect a leader through a Lease before running the controllers")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long non-leaders wait before taking over an unrenewed lease")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader retries renewing before giving up")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "wait between acquire and renew attempts")
	fs.StringVar(&o.LeaderElectNS, "leader-elect-resource-namespace", "kube-system", "namespace of the leader-election Lease")
	fs.StringVar(&o.LeaderElectName, "leader-elect-resource-name", LeaseName, "name of the leader-election Lease (not kube-controller-manager's)")
	fs.IntVar(&o.ConcurrentRSSyncs, "concurrent-replicaset-syncs", 5, "ReplicaSets synced in parallel")
	fs.IntVar(&o.ConcurrentDSyncs, "concurrent-deployment-syncs", 5, "Deployments synced in parallel")
	fs.IntVar(&o.ConcurrentNSSyncs, "concurrent-namespace-syncs", 10, "namespaces deleted in parallel")
	fs.IntVar(&o.ConcurrentDSSyncs, "concurrent-daemonset-syncs", 2, "DaemonSets synced in parallel")
	nl := nodelifecycle.DefaultOptions()
	o.NodeLifecycle = nl
	fs.DurationVar(&o.NodeLifecycle.MonitorPeriod, "node-monitor-period", nl.MonitorPeriod, "how often node health is checked")
	fs.DurationVar(&o.NodeLifecycle.GracePeriod, "node-monitor-grace-period", nl.GracePeriod, "how long a node may go without a heartbeat before it is marked unhealthy")
	fs.DurationVar(&o.NodeLifecycle.StartupGracePeriod, "node-startup-grace-period", nl.StartupGracePeriod, "how long a new node may go without its first heartbeat")
	fs.Float32Var(&o.NodeLifecycle.EvictionRate, "node-eviction-rate", nl.EvictionRate, "nodes per second whose pods may be evicted in a healthy zone")
	fs.Float32Var(&o.NodeLifecycle.SecondaryEvictionRate, "secondary-node-eviction-rate", nl.SecondaryEvictionRate, "nodes per second in an unhealthy zone of a large cluster")
	fs.Float32Var(&o.NodeLifecycle.UnhealthyZoneThreshold, "unhealthy-zone-threshold", nl.UnhealthyZoneThreshold, "fraction of not-ready nodes (at least 3) that makes a zone unhealthy")
	fs.IntVar(&o.NodeLifecycle.LargeClusterThreshold, "large-cluster-size-threshold", nl.LargeClusterThreshold, "clusters above this size keep evicting slowly in unhealthy zones")
}

// Validate checks the options before anything starts.
func (o *Options) Validate() ([]string, error) {
	enabled, err := controllernames.Resolve(o.Controllers)
	if err != nil {
		return nil, err
	}
	if len(enabled) == 0 {
		return nil, fmt.Errorf("--controllers=%v enables no controller", o.Controllers)
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		return nil, fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
	}
	if err := o.NodeLifecycle.Validate(); err != nil {
		return nil, err
	}
	if o.ConcurrentRSSyncs <= 0 || o.ConcurrentDSyncs <= 0 || o.ConcurrentNSSyncs <= 0 || o.ConcurrentDSSyncs <= 0 {
		return nil, fmt.Errorf("--concurrent-*-syncs must be positive")
	}
	if o.LeaderElect && (o.RenewDeadline >= o.LeaseDuration || o.RetryPeriod <= 0) {
		return nil, fmt.Errorf("leader election needs retry period > 0 and renew deadline < lease duration")
	}
	return enabled, nil
}

// Run runs the manager until ctx ends.
func Run(ctx context.Context, o *Options) error {
	enabled, err := o.Validate()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	// controller-runtime already speaks protobuf for built-in types and must speak JSON
	// to CRDs (PodGroup): only a request for JSON everywhere is passed on.
	if o.KubeAPIContentType != runtime.ContentTypeProtobuf {
		cfg.ContentType = o.KubeAPIContentType
	}
	// The manager's own client (informers, leader election, ServiceAccount tokens)
	// is "shared-informers", as stock names it; each controller gets its own below.
	rest.AddUserAgent(cfg, "shared-informers")
	cfg.WarningHandler = warningsOnce

	metricsAddr := "0"
	if o.SecurePort != 0 {
		metricsAddr = fmt.Sprintf("%s:%d", o.BindAddress, o.SecurePort)
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Metrics: metricsserver.Options{
			BindAddress: metricsAddr, SecureServing: true, CertDir: o.CertDir,
			FilterProvider: filters.WithAuthenticationAndAuthorization,
		},
		// No controller reads managedFields: drop them from the cache, as the stock
		// manager's informers do (less memory, cheaper copies out of the cache).
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		HealthProbeBindAddress:  o.HealthProbeAddress,
		PprofBindAddress:        o.PprofAddress,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        o.LeaderElectName,
		LeaderElectionNamespace: o.LeaderElectNS,
		LeaseDuration:           &o.LeaseDuration,
		RenewDeadline:           &o.RenewDeadline,
		RetryPeriod:             &o.RetryPeriod,
		// A new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("informers not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	factory, err := newClientFactory(mgr, cfg, o)
	if err != nil {
		return err
	}
	for _, name := range enabled {
		// Stock's namespace controller gets 20x the QPS and 100x the burst.
		qps, burst := float32(1), 1
		if name == namespace.Name {
			qps, burst = 20, 100
		}
		cl, err := factory.forController(ctx, name, qps, burst)
		if err != nil {
			return err
		}
		if err := setups[name](ctx, mgr, cl, o); err != nil {
			if errors.Is(err, podgroup.ErrCRDMissing) {
				// An optional API: the rest of the manager runs without it.
				ctrl.Log.Error(err, "controller not started", "controller", name)
				continue
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		ctrl.Log.Info("controller enabled", "controller", name)
	}
	return mgr.Start(ctx)
}

// setups registers each implemented controller on its own clients; keys must match
// controllernames.Implemented.
var setups = map[string]func(context.Context, manager.Manager, *Clients, *Options) error{
	daemonset.Name: func(_ context.Context, mgr manager.Manager, cl *Clients, o *Options) error {
		r := &daemonset.Reconciler{Client: cl.Client, APIReader: cl.APIReader, Recorder: cl.Recorder}
		return r.SetupWithManager(mgr, o.ConcurrentDSSyncs)
	},
	deployment.Name: func(_ context.Context, mgr manager.Manager, cl *Clients, o *Options) error {
		r := &deployment.Reconciler{Client: cl.Client, APIReader: cl.APIReader, Recorder: cl.Recorder}
		return r.SetupWithManager(mgr, o.ConcurrentDSyncs)
	},
	replicaset.Name: func(_ context.Context, mgr manager.Manager, cl *Clients, o *Options) error {
		r := &replicaset.Reconciler{Client: cl.Client, APIReader: cl.APIReader, Recorder: cl.Recorder}
		return r.SetupWithManager(mgr, o.ConcurrentRSSyncs)
	},
	namespace.Name: func(_ context.Context, mgr manager.Manager, cl *Clients, o *Options) error {
		r, err := namespace.NewReconciler(cl.Client, cl.Config)
		if err != nil {
			return err
		}
		return r.SetupWithManager(mgr, o.ConcurrentNSSyncs)
	},
	podgroup.Name: func(_ context.Context, mgr manager.Manager, cl *Clients, _ *Options) error {
		return (&podgroup.Reconciler{Client: cl.Client}).SetupWithManager(mgr)
	},
	nodelifecycle.Name: func(ctx context.Context, mgr manager.Manager, cl *Clients, o *Options) error {
		c := &nodelifecycle.Controller{Client: cl.Client, Recorder: cl.Recorder, Options: o.NodeLifecycle}
		return c.SetupWithManager(ctx, mgr)
	},
	tainteviction.Name: func(ctx context.Context, mgr manager.Manager, cl *Clients, _ *Options) error {
		r := &tainteviction.Reconciler{Client: cl.Client, Recorder: cl.Recorder}
		return r.SetupWithManager(ctx, mgr, 8)
	},
}
