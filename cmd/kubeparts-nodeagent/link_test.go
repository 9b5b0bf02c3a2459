package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods guards the agent's memory: most of its RSS is
// its own executable. The Go linker drops the methods nobody calls unless the
// program can call methods by a name computed at run time
// (reflect.Value.Method, MethodByName with a variable, text/template): then
// it keeps every exported method of every type stored in an interface, 8 MB
// of the agent's 30. One import anywhere (grpc's x/net/trace reached
// html/template) is enough, so the test links the agent with the Makefile's
// build tags and fails naming the import chain of any such call.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the agent")
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BUILD_TAGS\s*:=\s*(\S*)\s*$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("no BUILD_TAGS in the Makefile")
	}
	// -gcflags=-dwarf=false (package main compiled without debug info, the
	// same code) keeps this link apart from make build's: the go command files
	// a link's output with the compiled main package, and would otherwise print
	// these edges again on every later up-to-date build of the agent.
	cmd := exec.Command("go", "build", "-trimpath", "-tags", string(m[1]), "-gcflags=-dwarf=false", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "agent"), ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var deps, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &deps, &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stdout.String())
	}
	// -dumpdep prints "from -> to" for every reachability edge, callers
	// flagged <ReflectMethod>.
	parent := map[string]string{}
	var culprits []string
	for line := range strings.Lines(deps.String()) {
		from, to, ok := strings.Cut(strings.TrimSpace(line), " -> ")
		if !ok {
			continue
		}
		for _, s := range []string{from, to} {
			if name, found := strings.CutSuffix(s, " <ReflectMethod>"); found && !strings.HasPrefix(name, "reflect.") {
				culprits = append(culprits, name)
			}
		}
		from, to = stripMark(from), stripMark(to)
		if _, seen := parent[to]; !seen {
			parent[to] = from
		}
	}
	reported := map[string]bool{}
	for _, c := range culprits {
		if reported[c] {
			continue
		}
		reported[c] = true
		chain := []string{c}
		for n := c; parent[n] != "" && parent[n] != "_" && len(chain) < 40; n = parent[n] {
			chain = append(chain, parent[n])
		}
		t.Errorf("%s calls methods by computed name, so the linker keeps every exported method; reached through:\n  %s", c, strings.Join(chain, "\n  "))
	}
	if len(parent) == 0 {
		t.Fatal("-dumpdep printed no edges: cannot check")
	}
}

func stripMark(s string) string {
	if i := strings.Index(s, " <"); i >= 0 {
		return s[:i]
	}
	return s
}
