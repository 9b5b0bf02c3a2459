package config

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// The shipped kubeadm and kind files must switch off in the stock manager exactly the
// controllers kubeparts-controller-manager runs: one missing means two controllers
// fighting over the same objects, one too many means nobody runs it.
func TestStockControllersSwitchedOffMatchImplemented(t *testing.T) {
	names := controllernames.StockNames()
	sort.Strings(names)
	want := "*,-" + strings.Join(names, ",-")
	re := regexp.MustCompile(`"(\*,-[a-z,-]+)"`)
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
