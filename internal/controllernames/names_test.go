package controllernames

import (
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		flags   []string
		want    []string
		wantErr string
	}{
		{flags: []string{"*"}, want: []string{"daemonset-controller", "deployment-controller", "namespace-controller", "node-lifecycle-controller", "podgroup-controller", "replicaset-controller", "taint-eviction-controller"}},
		{flags: []string{"replicaset-controller"}, want: []string{"replicaset-controller"}},
		{flags: []string{"replicaset"}, want: []string{"replicaset-controller"}},
		{flags: []string{"deployment", "replicaset"}, want: []string{"deployment-controller", "replicaset-controller"}},
		{flags: []string{"*", "-replicaset-controller", "-namespace", "-nodelifecycle", "-taint-eviction-controller", "-daemonset", "-podgroup-controller"}, want: []string{"deployment-controller"}},
		{flags: []string{"-replicaset", "*", "-deployment", "-namespace", "-node-lifecycle-controller", "-taint-eviction-controller", "-daemonset-controller", "-podgroup-controller"}, want: nil},
		{flags: []string{"replicaset", "-replicaset-controller"}, want: nil},
		{flags: nil, want: nil},
		{flags: []string{"bogus-controller"}, wantErr: `unknown controller "bogus-controller"`},
		{flags: []string{"*", "-bogus"}, wantErr: `unknown controller "bogus"`},
		{flags: []string{"statefulset-controller"}, wantErr: "not implemented by kubeparts-controller-manager yet"},
		{flags: []string{"statefulset"}, wantErr: "not implemented by kubeparts-controller-manager yet"},
	} {
		got, err := Resolve(tc.flags)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%v) err = %v, want %q", tc.flags, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%v) = %v, %v; want %v", tc.flags, got, err, tc.want)
		}
	}
}

func TestStockNamesLeaveOutKubepartsOnly(t *testing.T) {
	for _, n := range StockNames() {
		if n == "podgroup-controller" {
			t.Fatal("a kubeparts-only controller would be switched off in the stock manager, which rejects unknown names")
		}
	}
	if len(StockNames()) != len(Implemented)-1 {
		t.Fatalf("StockNames %v", StockNames())
	}
}
