// Command images writes the container images the upstream Kubernetes e2e network specs
// pull, as OCI archives for `ctr images import` (no registry is reachable here):
//
//   - registry.k8s.io/e2e-test-images/agnhost:2.63.0 (and :2.55, the suite's AgnhostPrev):
//     the static agnhost binary as /agnhost (entrypoint; subcommands come from args), plus
//     the tools the e2e specs exec in agnhost pods, which upstream takes from Alpine:
//     busybox-static applets for seq, sleep, cat, ..., and Debian's dynamically linked
//     curl, wget, nc (openbsd), dig, nslookup, host, getent, bash, ip, ss, conntrack and iperf
//     with the shared libraries ldd names (Debian's static busybox crashes in wget and in
//     name lookups, so those applets are left out, and bash is /bin/sh). /coredns too when
//     -coredns is given.
//   - registry.k8s.io/e2e-test-images/busybox:1.37.0-1: busybox-static, laid out as
//     internal/localcluster lays out docker.io/library/busybox:1.35.
//   - registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0 (the DNS specs' "jessie"
//     querier: Debian with dnsutils upstream): the agnhost image's files, command bash.
//   - registry.k8s.io/e2e-test-images/nginx:1.15-4: a stand-in, the agnhost image serving
//     HTTP on port 80 (netexec); the EndpointSlice/Endpoints specs only need running pods.
//   - registry.k8s.io/e2e-test-images/regression-issue-74839:1.4: the static boom-server
//     (k8s.io/kubernetes/test/images/regression-issue-74839) when -regression is given.
//   - registry.k8s.io/pause:3.10.2: bin/pause, the suite's GetPauseImageName().
//
// Usage: go run ./hack/e2e-upstream/images -agnhost bin/e2e-upstream/agnhost -out DIR
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

const (
	agnhostImage     = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
	agnhostPrevImage = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	busyboxImage     = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	glibcDNSImage    = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0"
	nginxImage       = "registry.k8s.io/e2e-test-images/nginx:1.15-4"
	regressionImage  = "registry.k8s.io/e2e-test-images/regression-issue-74839:1.4"
	pauseImage       = "registry.k8s.io/pause:3.10.2"
	busyboxPath      = "/bin/busybox"
	pathEnv          = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// tools are the host binaries copied into the agnhost image at the same path (with
// their libraries); a busybox applet of the same name is left out.
var tools = []string{
	"/usr/bin/curl", "/usr/bin/wget", "/usr/bin/nc.openbsd", "/usr/bin/dig", "/usr/bin/nslookup",
	"/usr/bin/host", "/usr/bin/getent", "/usr/bin/bash", "/usr/sbin/ip", "/usr/bin/ss",
	"/usr/sbin/conntrack", "/usr/bin/iperf",
}

// links are extra symbolic links in the agnhost image (path -> target).
var links = map[string]string{
	"usr/bin/nc": "/usr/bin/nc.openbsd",
	"bin/bash":   "/usr/bin/bash",
	// Debian's busybox ash runs its own applets before PATH (wget and nslookup crash,
	// nc lacks -v): bash is /bin/sh, as sh in Alpine's image runs the apk tools.
	"bin/sh":    "/usr/bin/bash",
	"sbin/ip":   "/usr/sbin/ip",
	"agnhost-2": "/agnhost",
}

func main() {
	agnhost := flag.String("agnhost", "bin/e2e-upstream/agnhost", "static agnhost binary")
	pause := flag.String("pause", "bin/pause", "pause binary")
	coredns := flag.String("coredns", "", "CoreDNS binary to add as /coredns (DNS specs with a custom server)")
	regression := flag.String("regression", "", "static regression-issue-74839 binary")
	porter := flag.String("porter-dir", "", "k8s.io/kubernetes test/images/agnhost/porter (localhost.crt, localhost.key)")
	out := flag.String("out", "bin/e2e-upstream/images", "directory for the archives")
	flag.Parse()
	if err := run(*agnhost, *pause, *coredns, *regression, *porter, *out); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(agnhost, pause, coredns, regression, porter, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	bb, err := busyboxFiles(nil)
	if err != nil {
		return err
	}
	pauseBin, err := os.ReadFile(pause)
	if err != nil {
		return err
	}
	agn, err := agnhostFiles(agnhost, coredns, porter)
	if err != nil {
		return err
	}
	agnhostImg := ociimage.Image{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{pathEnv}, Files: agn}
	images := map[string]ociimage.Image{
		"agnhost.tar":           withName(agnhostImg, agnhostImage),
		"agnhost-prev.tar":      withName(agnhostImg, agnhostPrevImage),
		"glibc-dns-testing.tar": {Name: glibcDNSImage, Cmd: []string{"/bin/bash"}, Env: []string{pathEnv}, Files: agn},
		"nginx.tar": {Name: nginxImage, Entrypoint: []string{"/agnhost"}, Env: []string{pathEnv}, Files: agn,
			Cmd: []string{"netexec", "--http-port=80", "--udp-port=-1"}},
		"busybox.tar": {Name: busyboxImage, Cmd: []string{"sh"}, Env: []string{pathEnv}, Files: bb},
		"pause.tar": {Name: pauseImage, Entrypoint: []string{"/pause"},
			Files: []ociimage.File{{Path: "pause", Mode: 0o755, Data: pauseBin}}},
	}
	if regression != "" {
		data, err := os.ReadFile(regression)
		if err != nil {
			return err
		}
		images["regression-issue-74839.tar"] = ociimage.Image{Name: regressionImage, Entrypoint: []string{"/regression-issue-74839"},
			Files: []ociimage.File{{Path: "regression-issue-74839", Mode: 0o755, Data: data}}}
	}
	for file, img := range images {
		var buf bytes.Buffer
		if err := ociimage.Write(&buf, img); err != nil {
			return fmt.Errorf("%s: %w", img.Name, err)
		}
		if err := os.WriteFile(filepath.Join(out, file), buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%s\t%s\t%d MB\n", filepath.Join(out, file), img.Name, buf.Len()>>20)
	}
	return nil
}

func withName(img ociimage.Image, name string) ociimage.Image {
	img.Name = name
	return img
}

// busyboxFiles is /bin/busybox with a symbolic link per applet, leaving out the
// applets whose names are in skip.
func busyboxFiles(skip map[string]bool) ([]ociimage.File, error) {
	data, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	list, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, err
	}
	files := []ociimage.File{{Path: "bin/busybox", Mode: 0o755, Data: data}, {Path: "tmp/.keep", Mode: 0o644}}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" && !skip[path.Base(applet)] {
			files = append(files, ociimage.File{Path: applet, Link: "/bin/busybox"})
		}
	}
	return files, nil
}

func agnhostFiles(agnhost, coredns, porter string) ([]ociimage.File, error) {
	skip := map[string]bool{}
	for _, t := range tools {
		skip[path.Base(t)] = true
	}
	for l := range links {
		skip[path.Base(l)] = true
	}
	files, err := busyboxFiles(skip)
	if err != nil {
		return nil, err
	}
	add := func(dst, src string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files = append(files, ociimage.File{Path: strings.TrimPrefix(dst, "/"), Mode: 0o755, Data: data})
		return nil
	}
	if err := add("agnhost", agnhost); err != nil {
		return nil, err
	}
	if coredns != "" {
		if err := add("coredns", coredns); err != nil {
			return nil, err
		}
	}
	libs := map[string]bool{}
	for _, t := range tools {
		if err := add(t, t); err != nil {
			return nil, fmt.Errorf("%w (hack/e2e-upstream/README.md lists the Debian packages)", err)
		}
		deps, err := ldd(t)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	sorted := make([]string, 0, len(libs))
	for l := range libs {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, err
		}
		if err := add(l, real); err != nil {
			return nil, err
		}
	}
	for l, target := range links {
		files = append(files, ociimage.File{Path: l, Link: target})
	}
	if porter != "" {
		for _, f := range []string{"localhost.crt", "localhost.key"} {
			data, err := os.ReadFile(filepath.Join(porter, f))
			if err != nil {
				return nil, err
			}
			files = append(files, ociimage.File{Path: f, Mode: 0o644, Data: data})
		}
	}
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n" +
			"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
		"etc/group": "root:x:0:root\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\n" +
			"group-defined-in-image:x:50000:user-defined-in-image\n",
		"etc/nsswitch.conf":                "passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n",
		"etc/services":                     "http 80/tcp\nhttp 80/udp\n",
		"etc/protocols":                    "ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\nsctp 132 SCTP\n",
		"uploads/.keep":                    "",
		"home/user-defined-in-image/.keep": "",
	}
	for p, c := range etc {
		files = append(files, ociimage.File{Path: p, Mode: 0o644, Data: []byte(c)})
	}
	return files, nil
}

var lddLine = regexp.MustCompile(`(/\S+) \(0x`)

// ldd lists the shared libraries binary loads, the dynamic loader included.
func ldd(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := lddLine.FindStringSubmatch(sc.Text()); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs, sc.Err()
}
