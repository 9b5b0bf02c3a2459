package leanflags

import (
	"io"
	"testing"

	"github.com/spf13/pflag"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		ok       bool
		code     int
		wantName string
	}{
		{[]string{"--node-name=a"}, true, 0, "a"},
		{[]string{"--node_name=b"}, true, 0, "b"}, // underscores as the Kubernetes components accept them
		{[]string{"--help"}, false, 0, ""},
		{[]string{"--bogus"}, false, 1, ""},
		{[]string{"stray"}, false, 1, ""},
		{[]string{"-v=3"}, true, 0, ""},
	} {
		var name string
		fs, klogFlags, code, ok := Parse("test", "a test", tc.args, io.Discard, func(fs *pflag.FlagSet) { fs.StringVar(&name, "node-name", "", "") })
		if ok != tc.ok || code != tc.code || name != tc.wantName {
			t.Errorf("%v: ok %v code %d name %q, want %v %d %q", tc.args, ok, code, name, tc.ok, tc.code, tc.wantName)
		}
		if fs == nil || klogFlags == nil || klogFlags.Lookup("v") == nil {
			t.Errorf("%v: flag sets missing klog's", tc.args)
		}
	}
}
