package framework

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Process is a binary under test started by Run.
type Process struct {
	Pid int
	// Log is the file its output goes to, under the package's log dir.
	Log string
	// Done is closed when it has exited.
	Done <-chan struct{}
	// Stop kills it and waits (also done when the test ends).
	Stop func()
}

// Run starts binary (a name in bin/) with args, its output in
// <logdir>/<binary>-<test>.log, and kills it when the test ends.
func (e *Env) Run(t testing.TB, binary string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(e.LogDir, binary+"-"+strings.ReplaceAll(t.Name(), "/", "_")+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t, binary), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	stop := func() { _ = cmd.Process.Kill(); <-done }
	t.Cleanup(stop)
	return &Process{Pid: cmd.Process.Pid, Log: logPath, Done: done, Stop: stop}
}
