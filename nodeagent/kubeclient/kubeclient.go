// Package kubeclient is the node agent's API client: the few resources a
// kubelet reads and writes, with the clientset's method signatures, over a
// scheme that holds only their API groups.
//
// Why not client-go's clientset: importing it registers every API group of
// Kubernetes in its scheme and links their typed clients, informers, listers
// and apply configurations. For a node agent, which runs on every node, that
// is most of its binary and a third of its memory (the agent's resident set
// is mostly the pages of its own executable). This package keeps the agent
// to core/v1, coordination/v1, authentication/v1, authorization/v1 and
// certificates/v1, and
// makes the requests with client-go's REST client itself (client-go's generic
// typed client, gentype, links its fake client and with it the managed-fields
// and OpenAPI machinery), so errors, watches and protobuf are the clientset's.
package kubeclient

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Scheme knows the agent's API groups; Codecs decodes them (static pod
// manifests) and encodes requests.
var (
	Scheme         = runtime.NewScheme()
	Codecs         = serializer.NewCodecFactory(Scheme)
	parameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, coordinationv1.AddToScheme, authenticationv1.AddToScheme, authorizationv1.AddToScheme, certificatesv1.AddToScheme} {
		utilruntime.Must(add(Scheme))
	}
	// Status, WatchEvent and the option types under the unversioned "v1", as
	// client-go's scheme has them.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
}

// Interface is the subset of kubernetes.Interface the agent uses.
type Interface interface {
	CoreV1() CoreV1Interface
	CoordinationV1() CoordinationV1Interface
	AuthenticationV1() AuthenticationV1Interface
	AuthorizationV1() AuthorizationV1Interface
	CertificatesV1() CertificatesV1Interface
}

// CertificatesV1Interface requests the node's certificates (TLS bootstrap
// and rotation).
type CertificatesV1Interface interface {
	CertificateSigningRequests() CertificateSigningRequestInterface
}

// CertificateSigningRequestInterface: the agent creates its CSRs and waits
// for them to be approved and signed.
type CertificateSigningRequestInterface interface {
	Create(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, opts metav1.CreateOptions) (*certificatesv1.CertificateSigningRequest, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*certificatesv1.CertificateSigningRequest, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// CoreV1Interface is the subset of the clientset's CoreV1 the agent uses.
type CoreV1Interface interface {
	Pods(namespace string) PodInterface
	Nodes() NodeInterface
	ConfigMaps(namespace string) ConfigMapInterface
	Secrets(namespace string) SecretInterface
	ServiceAccounts(namespace string) ServiceAccountInterface
	Events(namespace string) EventInterface
	Services(namespace string) ServiceInterface
	PersistentVolumeClaims(namespace string) PersistentVolumeClaimInterface
	PersistentVolumes() PersistentVolumeInterface
}

// PersistentVolumeClaimInterface: read for persistentVolumeClaim volumes.
type PersistentVolumeClaimInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.PersistentVolumeClaim, error)
}

// PersistentVolumeInterface: the volume a claim is bound to.
type PersistentVolumeInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.PersistentVolume, error)
}

// ServiceInterface: watched for the Service environment variables of
// containers (KUBERNETES_SERVICE_HOST and the others).
type ServiceInterface interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.ServiceList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// PodInterface: the pods the agent watches, updates the status of, deletes
// when their containers are gone, and creates as mirrors of static pods.
type PodInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error)
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error)
	UpdateStatus(ctx context.Context, pod *corev1.Pod, opts metav1.UpdateOptions) (*corev1.Pod, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// NodeInterface: the agent registers its Node and posts its status.
type NodeInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Node, error)
	Create(ctx context.Context, node *corev1.Node, opts metav1.CreateOptions) (*corev1.Node, error)
	UpdateStatus(ctx context.Context, node *corev1.Node, opts metav1.UpdateOptions) (*corev1.Node, error)
}

// ConfigMapInterface: read for env and volumes.
type ConfigMapInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error)
}

// SecretInterface: read for env, volumes and image pull secrets.
type SecretInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
}

// ServiceAccountInterface: tokens for projected volumes.
type ServiceAccountInterface interface {
	CreateToken(ctx context.Context, serviceAccountName string, tokenRequest *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error)
}

// EventInterface: what client-go's event broadcaster writes through.
type EventInterface interface {
	Create(ctx context.Context, event *corev1.Event, opts metav1.CreateOptions) (*corev1.Event, error)
	Update(ctx context.Context, event *corev1.Event, opts metav1.UpdateOptions) (*corev1.Event, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Event, error)
}

// CoordinationV1Interface holds the node Lease.
type CoordinationV1Interface interface {
	Leases(namespace string) LeaseInterface
}

// LeaseInterface: the heartbeat in kube-node-lease.
type LeaseInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error)
	Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error)
	Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error)
}

// AuthenticationV1Interface reviews bearer tokens for the kubelet API.
type AuthenticationV1Interface interface {
	TokenReviews() TokenReviewInterface
}

// TokenReviewInterface creates TokenReviews.
type TokenReviewInterface interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// AuthorizationV1Interface authorizes kubelet API requests.
type AuthorizationV1Interface interface {
	SubjectAccessReviews() SubjectAccessReviewInterface
}

// SubjectAccessReviewInterface creates SubjectAccessReviews.
type SubjectAccessReviewInterface interface {
	Create(ctx context.Context, review *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// Clientset implements Interface over one shared HTTP client.
type Clientset struct {
	core, coordination, authentication, authorization, certificates rest.Interface
}

// NewForConfig builds the clients as kubernetes.NewForConfig would, one per
// group version, sharing cfg's transport.
func NewForConfig(cfg *rest.Config) (*Clientset, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	client := func(group, version, apiPath string) (rest.Interface, error) {
		c := *cfg
		c.GroupVersion = &schema.GroupVersion{Group: group, Version: version}
		c.APIPath = apiPath
		c.NegotiatedSerializer = Codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientForConfigAndClient(&c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("%s/%s client: %w", group, version, err)
		}
		return rc, nil
	}
	var cs Clientset
	for _, g := range []struct {
		into           *rest.Interface
		group, apiPath string
	}{
		{&cs.core, "", "/api"},
		{&cs.coordination, coordinationv1.GroupName, "/apis"},
		{&cs.authentication, authenticationv1.GroupName, "/apis"},
		{&cs.authorization, authorizationv1.GroupName, "/apis"},
		{&cs.certificates, certificatesv1.GroupName, "/apis"},
	} {
		if *g.into, err = client(g.group, "v1", g.apiPath); err != nil {
			return nil, err
		}
	}
	return &cs, nil
}

func (c *Clientset) CoreV1() CoreV1Interface                 { return core{c.core} }
func (c *Clientset) CoordinationV1() CoordinationV1Interface { return coordination{c.coordination} }
func (c *Clientset) AuthenticationV1() AuthenticationV1Interface {
	return authentication{c.authentication}
}
func (c *Clientset) AuthorizationV1() AuthorizationV1Interface { return authorization{c.authorization} }
func (c *Clientset) CertificatesV1() CertificatesV1Interface   { return certificates{c.certificates} }

type certificates struct{ rc rest.Interface }

func (c certificates) CertificateSigningRequests() CertificateSigningRequestInterface {
	return resource[certificatesv1.CertificateSigningRequest, certificatesv1.CertificateSigningRequestList]{c.rc, "certificatesigningrequests", ""}
}

type core struct{ rc rest.Interface }

func (c core) Pods(ns string) PodInterface {
	return resource[corev1.Pod, corev1.PodList]{c.rc, "pods", ns}
}

func (c core) Nodes() NodeInterface { return resource[corev1.Node, corev1.NodeList]{c.rc, "nodes", ""} }

func (c core) ConfigMaps(ns string) ConfigMapInterface {
	return resource[corev1.ConfigMap, corev1.ConfigMapList]{c.rc, "configmaps", ns}
}

func (c core) Secrets(ns string) SecretInterface {
	return resource[corev1.Secret, corev1.SecretList]{c.rc, "secrets", ns}
}

func (c core) Events(ns string) EventInterface {
	return resource[corev1.Event, corev1.EventList]{c.rc, "events", ns}
}

func (c core) ServiceAccounts(ns string) ServiceAccountInterface { return serviceAccounts{c.rc, ns} }

func (c core) Services(ns string) ServiceInterface {
	return resource[corev1.Service, corev1.ServiceList]{c.rc, "services", ns}
}

func (c core) PersistentVolumeClaims(ns string) PersistentVolumeClaimInterface {
	return resource[corev1.PersistentVolumeClaim, corev1.PersistentVolumeClaimList]{c.rc, "persistentvolumeclaims", ns}
}

func (c core) PersistentVolumes() PersistentVolumeInterface {
	return resource[corev1.PersistentVolume, corev1.PersistentVolumeList]{c.rc, "persistentvolumes", ""}
}

type serviceAccounts struct {
	rc rest.Interface
	ns string
}

// CreateToken is the serviceaccounts/token subresource (TokenRequest).
func (s serviceAccounts) CreateToken(ctx context.Context, name string, tr *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error) {
	out := &authenticationv1.TokenRequest{}
	err := s.rc.Post().Namespace(s.ns).Resource("serviceaccounts").Name(name).SubResource("token").
		VersionedParams(&opts, parameterCodec).Body(tr).Do(ctx).Into(out)
	return out, err
}

type coordination struct{ rc rest.Interface }

func (c coordination) Leases(ns string) LeaseInterface {
	return resource[coordinationv1.Lease, coordinationv1.LeaseList]{c.rc, "leases", ns}
}

type authentication struct{ rc rest.Interface }

func (c authentication) TokenReviews() TokenReviewInterface {
	return resource[authenticationv1.TokenReview, noList]{c.rc, "tokenreviews", ""}
}

type authorization struct{ rc rest.Interface }

func (c authorization) SubjectAccessReviews() SubjectAccessReviewInterface {
	return resource[authorizationv1.SubjectAccessReview, noList]{c.rc, "subjectaccessreviews", ""}
}

// resource is a typed client of one resource, namespaced when ns is set: T
// is its object type, L its list type.
type resource[T, L any] struct {
	rc       rest.Interface
	resource string
	ns       string
}

// noList stands for the list type of resources that have none (reviews).
type noList struct{ metav1.ListMeta }

func (r resource[T, L]) request(verb string) *rest.Request {
	return r.rc.Verb(verb).NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource)
}

// do sends req and decodes the answer into a new T (an API type, so *T is a
// runtime.Object). Like the clientset it returns an empty object with an error.
func do[T any](ctx context.Context, req *rest.Request) (*T, error) {
	out := new(T)
	return out, req.Do(ctx).Into(any(out).(runtime.Object))
}

func (r resource[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error) {
	return do[T](ctx, r.request("GET").Name(name).VersionedParams(&opts, parameterCodec))
}

func (r resource[T, L]) List(ctx context.Context, opts metav1.ListOptions) (*L, error) {
	req := r.request("GET").VersionedParams(&opts, parameterCodec)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	return do[L](ctx, req)
}

func (r resource[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req := r.request("GET").VersionedParams(&opts, parameterCodec)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	return req.Watch(ctx)
}

func (r resource[T, L]) Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error) {
	return do[T](ctx, r.request("POST").VersionedParams(&opts, parameterCodec).Body(any(obj)))
}

func (r resource[T, L]) Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error) {
	return do[T](ctx, r.request("PUT").Name(nameOf(obj)).VersionedParams(&opts, parameterCodec).Body(any(obj)))
}

func (r resource[T, L]) UpdateStatus(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error) {
	return do[T](ctx, r.request("PUT").Name(nameOf(obj)).SubResource("status").VersionedParams(&opts, parameterCodec).Body(any(obj)))
}

func (r resource[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.request("DELETE").Name(name).Body(&opts).Do(ctx).Error()
}

func (r resource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*T, error) {
	return do[T](ctx, r.rc.Patch(pt).NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource).Name(name).
		SubResource(subresources...).VersionedParams(&opts, parameterCodec).Body(data))
}

func nameOf(obj any) string { return obj.(metav1.Object).GetName() }
