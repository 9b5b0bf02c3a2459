package proxy

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The proxy reads four resources and writes Events: a scheme with just
// core/v1, discovery/v1 and networking/v1 keeps client-go's every-group clientset (and most
// of its memory) out of a binary that runs on every node.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(discoveryv1.AddToScheme(scheme))
	utilruntime.Must(networkingv1.AddToScheme(scheme))
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
}

// Client is the proxy's API access: list/watch of what it programs, and
// Event creation.
type Client struct {
	core, discovery, networking rest.Interface
}

// NewClient builds the clients over one transport, as a clientset would.
func NewClient(cfg *rest.Config) (*Client, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mk := func(group, apiPath string) (rest.Interface, error) {
		c := *cfg
		c.GroupVersion = &schema.GroupVersion{Group: group, Version: "v1"}
		c.APIPath = apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientForConfigAndClient(&c, httpClient)
	}
	var cl Client
	if cl.core, err = mk("", "/api"); err != nil {
		return nil, fmt.Errorf("core/v1 client: %w", err)
	}
	if cl.discovery, err = mk(discoveryv1.GroupName, "/apis"); err != nil {
		return nil, fmt.Errorf("discovery/v1 client: %w", err)
	}
	if cl.networking, err = mk(networkingv1.GroupName, "/apis"); err != nil {
		return nil, fmt.Errorf("networking/v1 client: %w", err)
	}
	return &cl, nil
}

// listWatch lists and watches one resource across namespaces.
func listWatch[L runtime.Object](rc rest.Interface, resource string, fieldSelector fields.Selector, labelSelector string, newList func() L) *cache.ListWatch {
	params := func(opts metav1.ListOptions) metav1.ListOptions {
		if fieldSelector != nil {
			opts.FieldSelector = fieldSelector.String()
		}
		opts.LabelSelector = labelSelector
		return opts
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts = params(opts)
			out := newList()
			req := rc.Get().Resource(resource).VersionedParams(&opts, parameterCodec)
			if opts.TimeoutSeconds != nil {
				req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
			}
			return out, req.Do(ctx).Into(out)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts = params(opts)
			opts.Watch = true
			req := rc.Get().Resource(resource).VersionedParams(&opts, parameterCodec)
			if opts.TimeoutSeconds != nil {
				req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
			}
			return req.Watch(ctx)
		},
	}
}

// Sources are the list/watch sources of the proxier; tests substitute fakes.
type Sources struct {
	Services, EndpointSlices, Node cache.ListerWatcher
	// ServiceCIDRs are the cluster's service ranges (nil: unknown, then
	// traffic to unallocated cluster IPs is not dropped).
	ServiceCIDRs cache.ListerWatcher
	// CreateEvent writes an Event (nil: Events are only logged).
	CreateEvent func(ctx context.Context, e *corev1.Event) error
}

// Services and EndpointSlices that another proxy handles
// (service.kubernetes.io/service-proxy-name) and those of headless Services
// are not even watched, as kube-proxy selects them.
const proxySelector = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"

// Sources returns the sources for the node named nodeName.
func (c *Client) Sources(nodeName string) Sources {
	return Sources{
		Services: listWatch(c.core, "services", nil, proxySelector, func() *corev1.ServiceList { return &corev1.ServiceList{} }),
		EndpointSlices: listWatch(c.discovery, "endpointslices", nil, proxySelector+",kubernetes.io/service-name", func() *discoveryv1.EndpointSliceList {
			return &discoveryv1.EndpointSliceList{}
		}),
		Node: listWatch(c.core, "nodes", fields.OneTermEqualSelector("metadata.name", nodeName), "", func() *corev1.NodeList { return &corev1.NodeList{} }),
		ServiceCIDRs: listWatch(c.networking, "servicecidrs", nil, "", func() *networkingv1.ServiceCIDRList {
			return &networkingv1.ServiceCIDRList{}
		}),
		CreateEvent: func(ctx context.Context, e *corev1.Event) error {
			return c.core.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(ctx).Error()
		},
	}
}
