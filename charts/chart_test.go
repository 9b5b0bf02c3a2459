// Package charts holds the Helm chart (charts/kubeparts) and its tests, which run
// the real helm CLI (bin/helm, `make test-unit` builds it from its Go module).
package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("KUBEPARTS_BIN")
	if bin == "" {
		bin = "../bin"
	}
	path, err := filepath.Abs(filepath.Join(bin, "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%v: build it with make %s", err, path)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// No user's repositories or cache: the chart alone.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	err = cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func TestLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", "kubeparts"); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

// Generated key material differs on each render: the goldens hold a mark.
var generated = regexp.MustCompile(`(?m)^(\s*(?:ca\.crt|tls\.crt|tls\.key|caBundle|checksum/ca):) \S+$`)

// TestTemplateGolden renders the chart for a table of value sets and compares
// with testdata/<name>.yaml (UPDATE_GOLDEN=1 rewrites them).
func TestTemplateGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"default", nil},
		{"scheduler-replace-proxy", []string{"scheduler.mode=replace", "proxy.enabled=true", "controllerManager.controllers={podgroup-controller}"}},
		{"certmanager", []string{"apiserver.tls.mode=certManager", "controllerManager.enabled=false", "scheduler.enabled=false"}},
		{"certmanager-issuer", []string{"apiserver.tls.mode=certManager", "apiserver.tls.certManager.issuerRef.name=cluster-ca", "apiserver.tls.certManager.issuerRef.kind=ClusterIssuer", "controllerManager.enabled=false", "scheduler.enabled=false"}},
		{"existing-secret", []string{"apiserver.tls.mode=secret", "apiserver.tls.existingSecret=my-tls", "apiserver.tls.caBundle=CA-PEM", "apiserver.kubelet.insecureTLS=true", "controllerManager.enabled=false", "scheduler.enabled=false"}},
		{"single-replicas-own-credentials", []string{"controllerManager.replicas=1", "scheduler.replicas=1", "apiserver.replicas=1", "controllerManager.useServiceAccountCredentials=false", "image.registry=registry.example:5000", "image.tag=v1", "apiserver.enabled=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "kubeparts", "kubeparts", "--namespace", "kube-system", "--include-crds"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			got := generated.ReplaceAllString(out, "$1 <generated>")
			golden := filepath.Join("testdata", tc.name+".yaml")
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (UPDATE_GOLDEN=1 writes it)", err)
			}
			if got != string(want) {
				t.Errorf("helm template differs from %s (UPDATE_GOLDEN=1 rewrites it after a deliberate change):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

// Bad values fail at install with a message naming the value, never a
// half-rendered chart.
func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"scheduler.replicas=two", "/scheduler/replicas"},
		{"controllerManager.replica=2", "additional properties 'replica' not allowed"},
		{"scheduler.mode=third", "/scheduler/mode"},
		{"apiserver.tls.mode=insecure", "/apiserver/tls/mode"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{"controllerManager.leaderElection.leaseDuration=soon", "/controllerManager/leaderElection/leaseDuration"},
		{"apiserver.tls.mode=secret", "apiserver.tls.existingSecret"},
		{"apiserver.tls.mode=secret,apiserver.tls.existingSecret=x", "set apiserver.tls.caBundle"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := helm(t, "template", "kubeparts", "kubeparts", "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s rendered; want an error naming %q", tc.set, tc.want)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("--set %s: error does not name %q:\n%s", tc.set, tc.want, out)
			}
		})
	}
}

// The chart's CRDs are the generated ones (make manifests writes config/crd/).
func TestCRDsMatchGenerated(t *testing.T) {
	generated, err := filepath.Glob("../config/crd/*.*.yaml")
	if err != nil || len(generated) == 0 {
		t.Fatalf("no CRDs in config/crd (%v)", err)
	}
	for _, g := range generated {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("kubeparts", "crds", filepath.Base(g)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("charts/kubeparts/crds/%s differs from %s or is missing (%v): make manifests copies it", filepath.Base(g), g, err)
		}
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n- " + a + "\n+ " + b
		}
	}
	return "(same lines, different endings)"
}

// The chart README documents every value of values.yaml.
func TestREADMENamesEveryValue(t *testing.T) {
	data, err := os.ReadFile("kubeparts/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("kubeparts/README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Map-valued settings are one value each, not a tree of values.
	whole := map[string]bool{"nodeSelector": true, "resources": true, "affinity": true, "annotations": true}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !whole[k] {
				walk(path+".", sub)
				continue
			}
			if !strings.Contains(string(readme), "| `"+path+"` |") {
				t.Errorf("charts/kubeparts/README.md has no row for %s", path)
			}
		}
	}
	walk("", values)
}
