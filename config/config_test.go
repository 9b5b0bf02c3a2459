package config

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// The shipped kubeadm and kind files must switch off in the stock manager exactly the
// controllers kubeparts-controller-manager runs: one missing means two controllers
// fighting over the same objects, one too many means nobody runs it.
func TestStockControllersSwitchedOffMatchImplemented(t *testing.T) {
	names := controllernames.StockNames()
	sort.Strings(names)
	// kubeadm's own default is "*,bootstrapsigner,tokencleaner": those two are off
	// under "*" alone, and without bootstrapsigner no node can join (kubeadm join finds
	// no JWS signature in the cluster-info ConfigMap).
	want := "*,bootstrapsigner,tokencleaner,-" + strings.Join(names, ",-")
	re := regexp.MustCompile(`"(\*,[a-z,-]+)"`)
	for _, f := range []string{"kubeadm/cluster-configuration.yaml", "kind/cluster.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(data)
		if m == nil {
			t.Fatalf("%s: no --controllers value found", f)
		}
		if got := string(m[1]); got != want {
			t.Errorf("%s: controllers %q, want %q", f, got, want)
		}
	}
}

// The files that leave kube-proxy out, for kubeparts-proxy, say so in the
// fields kubeadm and kind read.
func TestNoKubeProxyFiles(t *testing.T) {
	for file, want := range map[string]string{
		"kubeadm/init-configuration-no-kube-proxy.yaml": "skipPhases:\n- addon/kube-proxy\n",
		"kind/cluster-no-kube-proxy.yaml":               "kubeProxyMode: none\n",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}

// kind's kubeadm patches are in kubeadm v1beta4's form (current node images
// refuse v1beta3's map of extraArgs): apiVersion named, extraArgs a list of
// name/value pairs.
func TestKindPatchesAreV1beta4(t *testing.T) {
	data, err := os.ReadFile("kind/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cluster struct {
		Nodes []struct {
			KubeadmConfigPatches []string `json:"kubeadmConfigPatches"`
		} `json:"nodes"`
	}
	if err := yaml.Unmarshal(data, &cluster); err != nil {
		t.Fatal(err)
	}
	patches := 0
	for _, n := range cluster.Nodes {
		for _, p := range n.KubeadmConfigPatches {
			patches++
			var patch struct {
				APIVersion        string `json:"apiVersion"`
				Kind              string `json:"kind"`
				ControllerManager struct {
					ExtraArgs []struct{ Name, Value string } `json:"extraArgs"`
				} `json:"controllerManager"`
			}
			if err := yaml.UnmarshalStrict([]byte(p), &patch); err != nil {
				t.Fatalf("patch %q: %v (v1beta4 wants extraArgs as a list of name/value)", p, err)
			}
			if patch.APIVersion != "kubeadm.k8s.io/v1beta4" || patch.Kind != "ClusterConfiguration" || len(patch.ControllerManager.ExtraArgs) == 0 {
				t.Errorf("patch %q: want a kubeadm.k8s.io/v1beta4 ClusterConfiguration with controllerManager.extraArgs", p)
			}
		}
	}
	if patches == 0 {
		t.Fatal("no kubeadmConfigPatches")
	}
}
