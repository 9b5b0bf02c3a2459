package e2e

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkUpReadyAndStop measures a warm `kubeparts up` (binaries built, data dir kept
// from the previous round): from start to the export line, and from Ctrl-C to exit.
// DESIGN.md §6 sets the target at 10 s to ready; a plain script starting the stock
// binaries takes 10-14 s here.
func BenchmarkUpReadyAndStop(b *testing.B) {
	if testing.Short() {
		b.Skip("starts real clusters")
	}
	needRoot(b)
	bin := binDir(b)
	dataDir := tempDataDir(b)
	var ready, stop time.Duration
	for i := 0; i < b.N; i++ {
		began := time.Now()
		up := startUp(b, bin, "--data-dir", dataDir, "--port-base", "18443")
		up.waitReady(b, 4*time.Minute)
		ready += time.Since(began)
		began = time.Now()
		if code := up.stop(b, syscall.SIGINT, 90*time.Second); code != 0 {
			b.Fatalf("up exited %d:\n%s", code, up.output())
		}
		stop += time.Since(began)
	}
	b.ReportMetric(ready.Seconds()/float64(b.N), "s-to-ready/op")
	b.ReportMetric(stop.Seconds()/float64(b.N), "s-to-stop/op")
}
