package nodeagent

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/kubeparts/kubeparts/internal/leanflags"
)

// kubeadmKubeletConfig is /var/lib/kubelet/config.yaml as kubeadm v1.36
// writes it (every unset duration as 0s, empty objects included).
const kubeadmKubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {}
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
`

func parseWithConfig(t *testing.T, config string, args ...string) (*Options, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	o := NewOptions()
	fs, _, _, ok := leanflags.Parse("test", "", append([]string{"--config=" + path}, args...), io.Discard, o.AddFlags)
	if !ok {
		t.Fatalf("flags %v refused", args)
	}
	if err := o.ApplyConfigFile(fs); err != nil {
		return nil, err
	}
	o.Complete(fs)
	return o, nil
}

// kubeadm's file, with the flags of kubeadm's drop-in and
// kubeadm-flags.env, configures the agent as it configures the kubelet.
func TestKubeadmConfigFile(t *testing.T) {
	o, err := parseWithConfig(t, kubeadmKubeletConfig+"maxPods: 50\nsystemReserved:\n  cpu: 100m\n  memory: 200Mi\nevictionHard:\n  memory.available: 50Mi\nregisterWithTaints:\n- key: dedicated\n  value: infra\n  effect: NoSchedule\n",
		"--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.10",
		"--kubeconfig=/etc/kubernetes/kubelet.conf", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--healthz-port=20248")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"runtime from the CRI endpoint", o.Runtime, "remote"},
		{"clientCAFile", o.ClientCAFile, "/etc/kubernetes/pki/ca.crt"},
		{"authorization.mode", o.AuthorizationMode, "Webhook"},
		{"clusterDNS", o.ClusterDNS, []string{"10.96.0.10"}},
		{"clusterDomain", o.ClusterDomain, "cluster.local"},
		{"staticPodPath", o.PodManifestPath, "/etc/kubernetes/manifests"},
		{"rotateCertificates", o.RotateCertificates, true},
		{"maxPods", o.MaxPods, 50},
		{"systemReserved", o.SystemReserved, "cpu=100m,memory=200Mi"},
		{"evictionHard", o.EvictionHard, "memory.available<50Mi"},
		{"registerWithTaints", o.RegisterWithTaints, []string{"dedicated=infra:NoSchedule"}},
		{"the command line wins over the file (healthzPort)", o.HealthzPort, 20248},
		{"the node is named after the host", o.NodeName != "", true},
		{"bootstrap kubeconfig", o.BootstrapKubeconfig, "/etc/kubernetes/bootstrap-kubelet.conf"},
		{"cgroupDriver", o.CgroupDriver, "cgroupfs"},
		{"the kubelet's log directory by default", o.PodLogDir, "/var/log/pods"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if errs := o.Validate(); len(errs) > 0 {
		t.Errorf("kubeadm's configuration does not validate: %v", errs)
	}
}

// kind's and kubeadm's current default: the systemd driver, and (kind) a cgroup root
// under which the kubelet's pods go to kubepods.
func TestSystemdCgroupConfig(t *testing.T) {
	config := strings.Replace(kubeadmKubeletConfig, "cgroupDriver: cgroupfs", "cgroupDriver: systemd\ncgroupRoot: /kubelet", 1)
	o, err := parseWithConfig(t, config, "--container-runtime-endpoint=unix:///run/containerd/containerd.sock")
	if err != nil {
		t.Fatal(err)
	}
	if o.CgroupDriver != "systemd" || o.CgroupParent != "/kubelet/kubepods" {
		t.Errorf("cgroup driver %q, parent %q; want systemd and /kubelet/kubepods", o.CgroupDriver, o.CgroupParent)
	}
	if errs := o.Validate(); len(errs) > 0 {
		t.Errorf("does not validate: %v", errs)
	}
}

// A field the agent cannot honour is refused, naming the field, and so is
// one the format does not have; all are reported at once.
func TestConfigFileRefusals(t *testing.T) {
	head := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"a typo", head + "clusterDNs: [10.96.0.10]\n", []string{"clusterDNs: unknown field of KubeletConfiguration"}},
		{"a behaviour the agent lacks", head + "cpuManagerPolicy: static\n", []string{`cpuManagerPolicy: "static" is not supported`}},
		{"its default is fine", head + "cpuManagerPolicy: none\npodPidsLimit: -1\n", nil},
		{"an unknown cgroup driver", head + "cgroupDriver: openrc\n", []string{`cgroupDriver: "openrc": want cgroupfs or systemd`}},
		{"a nested typo", head + "authentication:\n  x509:\n    clientCAfile: /ca\n", []string{`authentication: x509: unknown field "clientCAfile"`}},
		{"every error at once", head + "featureGates: {Foo: true}\nreadOnlyPort: 10255\n", []string{"featureGates:", "readOnlyPort: 10255 is not supported"}},
		{"another kind", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n", []string{"want kubelet.config.k8s.io/v1beta1 KubeletConfiguration"}},
		{"not YAML", "{{", []string{"--config"}},
		{"a value of the wrong form", head + "systemReserved: 100m\n", []string{"systemReserved: want a map"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWithConfig(t, tc.config)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// Every field of the upstream type is classified, and no other.
func TestConfigFieldsMatchTheFormat(t *testing.T) {
	var upstream []string
	typ := reflect.TypeOf(kubeletv1beta1.KubeletConfiguration{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" {
			upstream = append(upstream, name)
		}
	}
	slices.Sort(upstream)
	if got := KubeletConfigFields(); !slices.Equal(got, upstream) {
		for _, f := range upstream {
			if !slices.Contains(got, f) {
				t.Errorf("field %s of the format is not classified", f)
			}
		}
		for _, f := range got {
			if !slices.Contains(upstream, f) {
				t.Errorf("field %s is not in the format", f)
			}
		}
	}
}

// Node allocatable as the kubelet computes it: capacity (measured on a
// real node, --capacity entries replacing single values) minus
// --system-reserved, --kube-reserved and, on a real node, the hard
// eviction thresholds.
func TestCapacityAndReserved(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		o                     Options
		wantCapacity, wantRes map[corev1.ResourceName]string
	}{
		{"simulated defaults", Options{Runtime: "simulated", MaxPods: 110},
			map[corev1.ResourceName]string{"cpu": "4", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}, map[corev1.ResourceName]string{}},
		{"simulated, --max-pods and --capacity", Options{Runtime: "simulated", MaxPods: 20, Capacity: "cpu=8"},
			map[corev1.ResourceName]string{"cpu": "8", "pods": "20"}, map[corev1.ResourceName]string{}},
		{"reservations add up", Options{Runtime: "simulated", MaxPods: 110, SystemReserved: "cpu=100m,memory=1Gi", KubeReserved: "cpu=200m"},
			nil, map[corev1.ResourceName]string{"cpu": "300m", "memory": "1Gi"}},
		{"a real node reserves the eviction thresholds", Options{Runtime: "remote", MaxPods: 50, RootDir: t.TempDir(), EvictionHard: "memory.available<100Mi", Capacity: "cpu=3"},
			map[corev1.ResourceName]string{"cpu": "3", "pods": "50"}, map[corev1.ResourceName]string{"memory": "100Mi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			capacity, reserved := tc.o.capacity()
			for name, want := range tc.wantCapacity {
				if got := capacity[name]; got.String() != want {
					t.Errorf("capacity %s = %s, want %s", name, got.String(), want)
				}
			}
			if tc.o.Runtime == "remote" {
				if q := capacity[corev1.ResourceEphemeralStorage]; q.Sign() <= 0 {
					t.Errorf("a real node's ephemeral-storage capacity %s, want the filesystem's size", q.String())
				}
			}
			for name, want := range tc.wantRes {
				if got := reserved[name]; got.String() != want {
					t.Errorf("reserved %s = %s, want %s", name, got.String(), want)
				}
			}
		})
	}
}

// --node-labels as kubeadm's and kind's drop-ins pass it.
func TestNodeLabelsFlag(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		want    map[string]string
		wantErr bool
	}{
		{"", map[string]string{}, false}, // kind: --node-labels=""
		{"a=1", map[string]string{"a": "1"}, false},
		{"a=1,topology.kubernetes.io/zone=z", map[string]string{"a": "1", "topology.kubernetes.io/zone": "z"}, false},
		{"a=", map[string]string{"a": ""}, false},
		{"a", nil, true},
		{"=1", nil, true},
	} {
		var l labelsFlag
		err := l.Set(tc.arg)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !reflect.DeepEqual(map[string]string(l), tc.want)) {
			t.Errorf("--node-labels=%q: %v %v, want %v (error %v)", tc.arg, l, err, tc.want, tc.wantErr)
		}
	}
}
