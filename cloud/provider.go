package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

// ProviderName is the --cloud-provider value of this provider.
const ProviderName = "kubeparts"

// Config is the provider's configuration: the --cloud-config file (YAML),
// with --load-balancer-cidr and --load-balancer-interface as flags over it.
type Config struct {
	// Inventory is the path of the inventory file `kubeparts up` writes.
	Inventory string `json:"inventory"`
	// LoadBalancerCIDR is the pool of load-balancer addresses (IPv4). Empty:
	// the provider offers no load balancers, and LoadBalancer Services stay
	// pending as on a cloud without them.
	LoadBalancerCIDR string `json:"loadBalancerCIDR,omitempty"`
	// LoadBalancerInterface is the dummy interface that holds the addresses.
	LoadBalancerInterface string `json:"loadBalancerInterface,omitempty"`
	// NFTablesTable is the nftables table (family ip) of the load balancers.
	NFTablesTable string `json:"nftablesTable,omitempty"`
	// ClusterCIDR is the manager's --cluster-cidr: routes are made and
	// listed only inside it, so clusters sharing the machine keep apart.
	ClusterCIDR string `json:"-"`
}

// LoadConfig reads a --cloud-config file; unknown keys are an error.
func LoadConfig(path string) (*Config, error) {
	cfg := &Config{}
	if path == "" {
		return nil, errors.New("--cloud-config is required: the kubeparts provider needs at least the path of its inventory")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return nil, fmt.Errorf("--cloud-config %s: %w", path, err)
	}
	return cfg, nil
}

// Complete fills defaults and validates; every error names its setting.
func (c *Config) Complete() error {
	var errs []error
	if c.Inventory == "" {
		errs = append(errs, errors.New("inventory: required (the file kubeparts up writes)"))
	}
	if c.LoadBalancerInterface == "" {
		c.LoadBalancerInterface = "kubeparts-lb"
	}
	if len(c.LoadBalancerInterface) > 15 {
		errs = append(errs, fmt.Errorf("loadBalancerInterface %q: an interface name has at most 15 characters", c.LoadBalancerInterface))
	}
	if c.NFTablesTable == "" {
		c.NFTablesTable = "kubeparts-lb"
	}
	if c.LoadBalancerCIDR != "" {
		if _, err := ParsePool(c.LoadBalancerCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--load-balancer-cidr %q: %w", c.LoadBalancerCIDR, err))
		}
	}
	if c.ClusterCIDR != "" {
		for _, s := range strings.Split(c.ClusterCIDR, ",") {
			if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err != nil {
				errs = append(errs, fmt.Errorf("--cluster-cidr %q: %w", c.ClusterCIDR, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Provider implements cloudprovider.Interface.
type Provider struct {
	cfg    Config
	lbs    *loadBalancers
	routes *routes
}

var _ cloudprovider.Interface = &Provider{}

// New makes the provider of a completed configuration.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg}
	var cluster []netip.Prefix
	for _, s := range strings.Split(cfg.ClusterCIDR, ",") {
		if pre, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			cluster = append(cluster, pre.Masked())
		}
	}
	p.routes = newRoutes(p.inventory, netlinkRoutes{}, cluster)
	if cfg.LoadBalancerCIDR != "" {
		pool, _ := ParsePool(cfg.LoadBalancerCIDR)
		p.lbs = newLoadBalancers(pool, p.inventory, newDataplane(cfg.NFTablesTable, cfg.LoadBalancerInterface))
	}
	return p, nil
}

// inventory reads the inventory anew: `up` may have changed the hosts.
func (p *Provider) inventory() (*Inventory, error) { return ReadInventory(p.cfg.Inventory) }

// Initialize starts the load balancers' health checks and learns the
// addresses Services already hold, so a restart hands out no address twice.
func (p *Provider) Initialize(cb cloudprovider.ControllerClientBuilder, stop <-chan struct{}) {
	if p.lbs == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	client, err := cb.Client("kubeparts-cloud-provider")
	if err != nil {
		klog.ErrorS(err, "No client for the load balancers; addresses held by Services are learnt as they sync")
	} else if err := p.lbs.prime(ctx, client); err != nil {
		klog.ErrorS(err, "Listing Services to learn their load-balancer addresses failed; they are learnt as they sync")
	}
	go p.lbs.run(ctx)
}

func (p *Provider) LoadBalancer() (cloudprovider.LoadBalancer, bool) {
	if p.lbs == nil {
		return nil, false
	}
	return p.lbs, true
}

func (p *Provider) Instances() (cloudprovider.Instances, bool) { return nil, false }
func (p *Provider) InstancesV2() (cloudprovider.InstancesV2, bool) {
	return &instances{p.inventory}, true
}
func (p *Provider) Zones() (cloudprovider.Zones, bool)       { return nil, false }
func (p *Provider) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes route each node's pod range to its host (routes.go). The route
// controller runs with --configure-cloud-routes (the default) and needs
// --cluster-cidr.
func (p *Provider) Routes() (cloudprovider.Routes, bool) { return p.routes, true }

func (p *Provider) ProviderName() string { return ProviderName }
func (p *Provider) HasClusterID() bool   { return true }

// Flags are the provider's own flags, beside the cloud-controller-manager's.
type Flags struct {
	LoadBalancerCIDR, LoadBalancerInterface string
}

// FromManager builds the provider from the manager's --cloud-provider,
// --cloud-config and --cluster-cidr, and the provider's flags over the
// config file.
func FromManager(name, configFile, clusterCIDR string, f Flags) (*Provider, error) {
	if name != ProviderName {
		return nil, fmt.Errorf("--cloud-provider=%q: kubeparts-cloud-controller-manager has one provider, %q", name, ProviderName)
	}
	cfg, err := LoadConfig(configFile)
	if err != nil {
		return nil, err
	}
	if f.LoadBalancerCIDR != "" {
		cfg.LoadBalancerCIDR = f.LoadBalancerCIDR
	}
	if f.LoadBalancerInterface != "" {
		cfg.LoadBalancerInterface = f.LoadBalancerInterface
	}
	cfg.ClusterCIDR = clusterCIDR
	return New(*cfg)
}
