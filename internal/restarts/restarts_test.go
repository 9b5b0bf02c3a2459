package restarts

import (
	"path/filepath"
	"testing"
)

func TestWriteReadOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restarts.json")
	if recs, err := Read(path); err != nil || len(recs) != 0 {
		t.Fatalf("no file: %v %v, want nothing restarted", recs, err)
	}
	want := []Record{
		{Process: "kubeparts-scheduler-kpha-cp1", Binary: "kubeparts-scheduler", Instance: "kpha-cp1", Restarts: 2},
		{Process: "kubeparts-scheduler-kpha-cp3", Binary: "kubeparts-scheduler", Instance: "kpha-cp3", Restarts: 1},
		{Process: "kubeparts-nodeagent", Binary: "kubeparts-nodeagent", Instance: "kpha", Restarts: 4},
	}
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil || len(got) != 3 || got[0] != want[0] {
		t.Fatalf("read back %v %v", got, err)
	}
	for _, tc := range []struct {
		binary, instance string
		lone             bool
		want             int32
	}{
		{"kubeparts-scheduler", "kpha-cp1", false, 2},
		{"kubeparts-scheduler", "kpha-cp2", false, 0},
		{"kubeparts-scheduler", "127.0.0.1", true, 3}, // a lone copy: every record of the binary
		{"kubeparts-nodeagent", "kpha", false, 4},
		{"etcd", "default", true, 0},
	} {
		if n := Of(got, tc.binary, tc.instance, tc.lone); n != tc.want {
			t.Errorf("Of(%s, %s, %v) = %d, want %d", tc.binary, tc.instance, tc.lone, n, tc.want)
		}
	}
}
