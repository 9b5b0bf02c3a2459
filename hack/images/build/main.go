// Command build writes a single-binary container image as an OCI archive that
// `ctr images import` or `kind load image-archive` loads; no registry or Docker needed.
//
//	go run ./hack/images/build --binary bin/kubeparts-controller-manager \
//	  --name kubeparts/kubeparts-controller-manager:dev --out bin/images/kubeparts-controller-manager.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

func main() {
	binary := flag.String("binary", "", "static binary to put in the image as its entrypoint")
	name := flag.String("name", "", "image reference, e.g. kubeparts/kubeparts-controller-manager:dev")
	out := flag.String("out", "", "OCI archive to write")
	flag.Parse()
	if err := run(*binary, *name, *out); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(binary, name, out string) error {
	if binary == "" || name == "" || out == "" {
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
	err = ociimage.Write(f, ociimage.Image{
		Name:       name,
		Files:      []ociimage.File{{Path: base, Mode: 0o755, Data: data}},
		Entrypoint: []string{"/" + base},
		Env:        []string{"PATH=/"},
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
