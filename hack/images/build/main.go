// Command build writes a single-binary container image as an OCI archive that
// `ctr images import` or `kind load image-archive` loads; no registry or Docker needed.
//
//	go run ./hack/images/build --binary bin/kubeparts-controller-manager \
//	  --name kubeparts/kubeparts-controller-manager:dev --out bin/images/kubeparts-controller-manager.tar
//
// --host-binary adds a program of this machine with the shared libraries it
// links (as ldd lists them) at their paths: kubeparts-proxy programs nftables
// through Debian's nft, as kube-proxy's image carries its own.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	binary := flag.String("binary", "", "static binary to put in the image as its entrypoint")
	name := flag.String("name", "", "image reference, e.g. kubeparts/kubeparts-controller-manager:dev")
	out := flag.String("out", "", "OCI archive to write")
	user := flag.String("user", "", "user the entrypoint runs as (uid or uid:gid); empty is root")
	dir := flag.String("dir", "", "directory of the image to put the binary in, e.g. usr/local/bin (where kubeadm's manifests run kube-proxy from); empty: the root")
	var host, labels multi
	flag.Var(&host, "host-binary", "absolute path of a dynamically linked program of this machine to add with its libraries (repeatable)")
	flag.Var(&labels, "label", "KEY=VALUE image label, e.g. org.opencontainers.image.revision=<commit> (repeatable)")
	flag.Parse()
	img := ociimage.Image{Name: *name, User: *user}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			fmt.Fprintf(os.Stderr, "build: --label %q: want KEY=VALUE\n", l)
			os.Exit(2)
		}
		if img.Labels == nil {
			img.Labels = map[string]string{}
		}
		img.Labels[k] = v
	}
	binDir = strings.Trim(*dir, "/")
	if err := run(*binary, img, *out, host); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

// binDir is where run puts the binary inside the image ("" for the root).
var binDir string

// run writes img, with binary as its entrypoint and the host programs, to out.
func run(binary string, img ociimage.Image, out string, host []string) error {
	if binary == "" || img.Name == "" || out == "" {
		return fmt.Errorf("--binary, --name and --out are required")
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	base := filepath.Base(binary)
	inImage := filepath.Join(binDir, base)
	files := []ociimage.File{{Path: inImage, Mode: 0o755, Data: data}}
	path := "/" + binDir
	for _, h := range host {
		more, err := withLibraries(h)
		if err != nil {
			return err
		}
		files = append(files, more...)
		path += ":" + filepath.Dir(h)
	}
	img.Files, img.Entrypoint, img.Env = files, []string{"/" + inImage}, []string{"PATH=" + path}
	err = ociimage.Write(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// withLibraries reads program and the libraries ldd resolves for it (and the
// dynamic loader), each at the path it is loaded from.
func withLibraries(program string) ([]ociimage.File, error) {
	if !filepath.IsAbs(program) {
		return nil, fmt.Errorf("--host-binary %q: need an absolute path", program)
	}
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", program, err)
	}
	paths := []string{program}
	for _, line := range strings.Split(string(out), "\n") {
		// "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, f[0])
		}
	}
	var files []ociimage.File
	for _, p := range paths {
		data, err := os.ReadFile(p) // follows symbolic links: the image holds the file itself
		if err != nil {
			return nil, err
		}
		files = append(files, ociimage.File{Path: strings.TrimPrefix(p, "/"), Mode: 0o755, Data: data})
	}
	return files, nil
}
