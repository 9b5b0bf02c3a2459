// Package apiserver is kubeparts-apiserver: an aggregated API server (behind
// kube-apiserver through APIService objects) serving metrics.k8s.io/v1beta1
// in place of metrics-server, and controlplane.kubeparts.dev/v1alpha1, a
// read-only view of which control-plane pieces run and how they are.
//
// It follows the k8s.io/apiserver shape: Options (flags) -> Config -> Server.
// It keeps no storage: metrics come from scraping the nodes' kubelet
// /metrics/resource endpoints, the control-plane view is computed on read.
package apiserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/metrics"
	metricsinstall "k8s.io/metrics/pkg/apis/metrics/install"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	controlplanev1alpha1 "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
	"github.com/kubeparts/kubeparts/apiserver/controlplane"
	generatedopenapi "github.com/kubeparts/kubeparts/apiserver/generated/openapi"
	"github.com/kubeparts/kubeparts/apiserver/metricsapi"
	"github.com/kubeparts/kubeparts/apiserver/scraper"
)

var (
	// Scheme holds the served types; Codecs encodes them.
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	metricsinstall.Install(Scheme)
	if err := controlplanev1alpha1.AddToScheme(Scheme); err != nil {
		panic(err)
	}
	// Options and status types every API server registers for its requests.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned, &metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

// Options are the command-line flags.
type Options struct {
	SecureServing  *genericoptions.SecureServingOptionsWithLoopback
	Authentication *genericoptions.DelegatingAuthenticationOptions
	Authorization  *genericoptions.DelegatingAuthorizationOptions
	Audit          *genericoptions.AuditOptions
	Features       *genericoptions.FeatureOptions

	// Kubeconfig reaches kube-apiserver; empty means in-cluster.
	Kubeconfig string
	Kubelet    KubeletOptions
	// MetricResolution is the scrape interval.
	MetricResolution time.Duration
	ControlPlane     controlplane.Options
}

// KubeletOptions say how to reach and trust the nodes' kubelet endpoints.
type KubeletOptions struct {
	Port                                  int
	Scheme                                string
	CAFile, ClientCertFile, ClientKeyFile string
	InsecureSkipTLSVerify                 bool
	Timeout                               time.Duration
	Concurrency                           int
	AddressTypes                          []string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{
		SecureServing:    genericoptions.NewSecureServingOptions().WithLoopback(),
		Authentication:   genericoptions.NewDelegatingAuthenticationOptions(),
		Authorization:    genericoptions.NewDelegatingAuthorizationOptions(),
		Audit:            genericoptions.NewAuditOptions(),
		Features:         genericoptions.NewFeatureOptions(),
		MetricResolution: 15 * time.Second,
		Kubelet: KubeletOptions{Scheme: "https", Timeout: 10 * time.Second, Concurrency: 10,
			AddressTypes: []string{"InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS"}},
	}
	// kube-apiserver already applies priority and fairness to every request
	// before proxying it here; doing it again would need its own informers.
	o.Features.EnablePriorityAndFairness = false
	o.SecureServing.BindPort = 10250 + 1 // 10251; metrics-server listens on 10250 in its pod, which would clash with a kubelet on a host
	o.SecureServing.ServerCert.PairName = "kubeparts-apiserver"
	// Probes and scrapes of our own health need no identity, like metrics-server.
	o.Authorization.AlwaysAllowPaths = []string{"/healthz", "/readyz", "/livez"}
	return o
}

// AddFlags registers the flags, with the names metrics-server and the
// generic apiserver use.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.SecureServing.AddFlags(fs)
	o.Authentication.AddFlags(fs)
	o.Authorization.AddFlags(fs)
	o.Audit.AddFlags(fs)
	o.Features.AddFlags(fs)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig for kube-apiserver; in-cluster config when empty")
	fs.DurationVar(&o.MetricResolution, "metric-resolution", o.MetricResolution, "how often nodes are scraped (at least 5s)")
	fs.IntVar(&o.Kubelet.Port, "kubelet-port", o.Kubelet.Port, "kubelet port; 0 uses each node's status.daemonEndpoints")
	fs.StringVar(&o.Kubelet.Scheme, "kubelet-scheme", o.Kubelet.Scheme, "https or http")
	fs.StringVar(&o.Kubelet.CAFile, "kubelet-certificate-authority", o.Kubelet.CAFile, "CA that signs the kubelets' serving certificates")
	fs.StringVar(&o.Kubelet.ClientCertFile, "kubelet-client-certificate", o.Kubelet.ClientCertFile, "client certificate for the kubelets; the kubeconfig's credentials when empty")
	fs.StringVar(&o.Kubelet.ClientKeyFile, "kubelet-client-key", o.Kubelet.ClientKeyFile, "key of --kubelet-client-certificate")
	fs.BoolVar(&o.Kubelet.InsecureSkipTLSVerify, "kubelet-insecure-tls", o.Kubelet.InsecureSkipTLSVerify, "do not verify the kubelets' serving certificates (testing only)")
	fs.DurationVar(&o.Kubelet.Timeout, "kubelet-request-timeout", o.Kubelet.Timeout, "timeout of one node's scrape")
	fs.IntVar(&o.Kubelet.Concurrency, "kubelet-scrape-concurrency", o.Kubelet.Concurrency, "nodes scraped in parallel")
	fs.StringSliceVar(&o.Kubelet.AddressTypes, "kubelet-preferred-address-types", o.Kubelet.AddressTypes, "node address types to reach kubelets by, in order")
	o.ControlPlane.AddFlags(fs)
}

// Validate reports every bad flag at once.
func (o *Options) Validate() []error {
	var errs []error
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	errs = append(errs, o.Audit.Validate()...)
	errs = append(errs, o.Features.Validate()...)
	if o.MetricResolution < 5*time.Second {
		errs = append(errs, fmt.Errorf("--metric-resolution %s: must be at least 5s", o.MetricResolution))
	}
	if o.Kubelet.Scheme != "https" && o.Kubelet.Scheme != "http" {
		errs = append(errs, fmt.Errorf("--kubelet-scheme %q: must be https or http", o.Kubelet.Scheme))
	}
	if o.Kubelet.Timeout <= 0 || o.Kubelet.Concurrency <= 0 {
		errs = append(errs, fmt.Errorf("--kubelet-request-timeout and --kubelet-scrape-concurrency must be positive"))
	}
	if (o.Kubelet.ClientCertFile == "") != (o.Kubelet.ClientKeyFile == "") {
		errs = append(errs, fmt.Errorf("--kubelet-client-certificate and --kubelet-client-key go together"))
	}
	errs = append(errs, o.ControlPlane.Validate()...)
	return errs
}

// Server is a configured, not yet running kubeparts-apiserver.
type Server struct {
	generic *genericapiserver.GenericAPIServer
	scraper *scraper.Scraper
	pods    metadatainformer.SharedInformerFactory
	nodes   informers.SharedInformerFactory
}

// New builds the server from validated options.
func (o *Options) New() (*Server, error) {
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("self-signed serving certificate: %w", err)
	}
	restConfig, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	cfg := genericapiserver.NewRecommendedConfig(Codecs)
	cfg.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	if err := o.SecureServing.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return nil, err
	}
	namer := openapi.NewDefinitionNamer(Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title, cfg.OpenAPIConfig.Info.Version = "kubeparts-apiserver", "v1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title, cfg.OpenAPIV3Config.Info.Version = "kubeparts-apiserver", "v1"
	if err := o.Authentication.ApplyTo(&cfg.Authentication, cfg.SecureServing, cfg.OpenAPIConfig); err != nil {
		return nil, err
	}
	if err := o.Authorization.ApplyTo(&cfg.Authorization); err != nil {
		return nil, err
	}
	if err := o.Audit.ApplyTo(&cfg.Config); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	if err := o.Features.ApplyTo(&cfg.Config, client, nil); err != nil {
		return nil, err
	}
	// Nothing is stored, so there is no etcd to check; readiness is the first scrape.
	cfg.Config.SkipOpenAPIInstallation = false

	meta, err := metadata.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	// Pods: names and labels only (metadata informer); nodes: the typed
	// objects for their addresses and kubelet port, slimmed on arrival.
	podInf := metadatainformer.NewSharedInformerFactory(meta, 0)
	pods := podInf.ForResource(corev1.SchemeGroupVersion.WithResource("pods"))
	nodeInf := informers.NewSharedInformerFactory(client, 0)
	nodeInformer := nodeInf.Core().V1().Nodes()
	if err := nodeInformer.Informer().SetTransform(slimNode); err != nil {
		return nil, err
	}
	nodeLister := nodeInformer.Lister()
	httpClient, err := o.kubeletClient(restConfig)
	if err != nil {
		return nil, err
	}
	scraper.RegisterMetrics()
	sc := scraper.New(func() ([]*corev1.Node, error) { return nodeLister.List(labels.Everything()) }, httpClient, scraper.Options{
		Interval: o.MetricResolution, Timeout: o.Kubelet.Timeout, Concurrency: o.Kubelet.Concurrency,
		AddressTypes: addressTypes(o.Kubelet.AddressTypes), Port: o.Kubelet.Port, Scheme: o.Kubelet.Scheme,
	})

	generic, err := cfg.Complete().New("kubeparts-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	// Not ready until the first scrape is done, so a fresh replica is not
	// put behind the APIService while it would answer with nothing.
	if err := generic.AddReadyzChecks(healthz.NamedCheck("metrics-scraped", func(*http.Request) error {
		if !sc.Ready() {
			return fmt.Errorf("first scrape of the nodes not finished")
		}
		return nil
	})); err != nil {
		return nil, err
	}

	metricsGroup := genericapiserver.NewDefaultAPIGroupInfo(metrics.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	metricsGroup.VersionedResourcesStorageMap[metricsv1beta1.SchemeGroupVersion.Version] = map[string]rest.Storage{
		"nodes": metricsapi.NewNodeStorage(cache.NewGenericLister(nodeInformer.Informer().GetIndexer(), corev1.Resource("nodes")), sc),
		"pods":  metricsapi.NewPodStorage(pods.Lister(), sc),
	}
	if err := generic.InstallAPIGroup(&metricsGroup); err != nil {
		return nil, err
	}
	view, err := o.ControlPlane.New(client, restConfig)
	if err != nil {
		return nil, err
	}
	cpGroup := genericapiserver.NewDefaultAPIGroupInfo(controlplanev1alpha1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	cpGroup.VersionedResourcesStorageMap[controlplanev1alpha1.SchemeGroupVersion.Version] = view.Storage()
	if err := generic.InstallAPIGroup(&cpGroup); err != nil {
		return nil, err
	}
	return &Server{generic: generic, scraper: sc, pods: podInf, nodes: nodeInf}, nil
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.pods.Start(ctx.Done())
	s.nodes.Start(ctx.Done())
	for gvr, ok := range s.pods.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache of %s did not sync", gvr.Resource)
		}
	}
	for typ, ok := range s.nodes.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache of %v did not sync", typ)
		}
	}
	go s.scraper.Run(ctx)
	klog.FromContext(ctx).Info("Serving", "groups", []string{metrics.GroupName, controlplanev1alpha1.GroupName})
	return s.generic.PrepareRun().RunWithContext(ctx)
}

func (o *Options) restConfig() (*restclient.Config, error) {
	var cfg *restclient.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = restclient.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.UserAgent = "kubeparts-apiserver"
	return cfg, nil
}
