// Package leanflags parses the flags of the binaries that run on every node
// (kubeparts-nodeagent, kubeparts-proxy) with pflag and klog's own flags
// rather than component-base's cli and logs packages, which link feature
// gates, metrics registries and log formats those binaries do not use: every
// linked megabyte is resident on every node.
package leanflags

import (
	goflag "flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// Parse makes the flag set of the command name, lets add register the
// component's flags, adds klog's (-v, --vmodule, ...) and parses args, with
// --foo_bar read as --foo-bar as in the Kubernetes components. It returns
// the set and klog's flags; when the command should not go on (--help, a bad
// flag, stray arguments) ok is false and code is its exit code, the reason
// written to stderr.
func Parse(name, summary string, args []string, stderr io.Writer, add func(*pflag.FlagSet)) (fs *pflag.FlagSet, klogFlags *goflag.FlagSet, code int, ok bool) {
	fs = pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, n string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(n, "_", "-"))
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s: %s\n\nUsage:\n  %s [flags]\n\nFlags:\n%s", name, summary, name, fs.FlagUsages())
	}
	add(fs)
	klogFlags = goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return fs, klogFlags, 0, false
		}
		fmt.Fprintln(stderr, "Error:", err)
		return fs, klogFlags, 1, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected arguments %v\n", fs.Args())
		return fs, klogFlags, 1, false
	}
	return fs, klogFlags, 0, true
}
