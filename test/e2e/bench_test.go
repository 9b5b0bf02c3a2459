package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// BenchmarkHAFailover measures, in the stacked HA topology (3 control-plane hosts),
// how long each leader-elected piece takes from its leader's kill -9 until another
// host's copy holds its Lease (the new leader's first write), kubeparts' pieces beside
// the stock ones of the same role, with the same lease settings (15 s lease, 2 s retry):
// the goal is within lease duration + one retry period, never slower than stock. The
// stock scheduler runs in a second cluster (--stock=scheduler): one Lease, one
// scheduler. It also reports the write availability while one etcd member is lost:
// the share of failed writes, overall and in the worst second, of 60 s of steady writes
// with a member frozen for the middle 40 s.
func BenchmarkHAFailover(b *testing.B) {
	if testing.Short() {
		b.Skip("starts real clusters")
	}
	needRoot(b)
	bin := binDir(b)
	type piece struct{ binary, lease string }
	measure := func(stock string, pieces []piece) map[string]time.Duration {
		data := tempDataDir(b)
		args := []string{"--bin-dir", bin, "--data-dir", data, "--port-base", "33443", "--node-name", "kpbench", "--control-planes", "3", "--fresh",
			"--stock", strings.Trim("cloud-controller-manager,"+stock, ",")}
		u := startUp(b, bin, args...)
		kc := u.waitReady(b, 6*time.Minute)
		h := newHACluster(b, bin, kc, "kpbench")
		took := map[string]time.Duration{}
		for _, pc := range pieces {
			eventually(b, 2*time.Minute, pc.lease+" held", func() error {
				if who, _ := h.holder(pc.lease); who == "" {
					return fmt.Errorf("no holder")
				}
				return nil
			})
			for i := 0; i < b.N; i++ {
				_, d := h.killLeaderAndTime(b, pc.binary, pc.lease)
				took[pc.binary] += d
			}
		}
		if stock == "" {
			availability(b, h)
		}
		if code := u.stop(b, syscall.SIGINT, 2*time.Minute); code != 0 {
			b.Fatalf("up exited %d", code)
		}
		return took
	}
	took := measure("", []piece{{"kube-controller-manager", "kube-controller-manager"}, {"kubeparts-controller-manager", "kubeparts-controller-manager"}, {"kubeparts-scheduler", "kube-scheduler"}})
	for name, d := range measure("scheduler", []piece{{"kube-scheduler", "kube-scheduler"}}) {
		took[name] = d
	}
	per := func(name string) float64 { return took[name].Seconds() / float64(b.N) }
	b.ReportMetric(per("kubeparts-controller-manager"), "s-kubeparts-cm-failover/op")
	b.ReportMetric(per("kube-controller-manager"), "s-stock-cm-failover/op")
	b.ReportMetric(per("kubeparts-controller-manager")/per("kube-controller-manager"), "cm-failover-ratio")
	b.ReportMetric(per("kubeparts-scheduler"), "s-kubeparts-scheduler-failover/op")
	b.ReportMetric(per("kube-scheduler"), "s-stock-scheduler-failover/op")
	b.ReportMetric(per("kubeparts-scheduler")/per("kube-scheduler"), "scheduler-failover-ratio")
}

// availability writes steadily for 60 s with one etcd member (not the leader's host's
// kube-apiserver: only the member) frozen from 10 s to 50 s, and reports the share of
// failed writes.
func availability(b *testing.B, h *haCluster) {
	b.Helper()
	if _, err := kubectl(b, h.bin, h.kc, "create", "namespace", "bench-writes"); err != nil {
		b.Fatal(err)
	}
	type second struct{ writes, failed int }
	var mu sync.Mutex
	seconds := map[int]*second{}
	began := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := h.client.CoreV1().ConfigMaps("bench-writes").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "w-"}}, metav1.CreateOptions{})
				cancel()
				mu.Lock()
				s := int(time.Since(began).Seconds())
				if seconds[s] == nil {
					seconds[s] = &second{}
				}
				seconds[s].writes++
				if err != nil {
					seconds[s].failed++
				}
				mu.Unlock()
			}
		}()
	}
	frozen := "kpbench-cp3"
	// The measurement window's marks (a timed window, not a wait for anything).
	at := func(d time.Duration) { time.Sleep(time.Until(began.Add(d))) }
	at(10 * time.Second)
	signalHost(b, frozen, syscall.SIGSTOP, "etcd")
	at(50 * time.Second)
	signalHost(b, frozen, syscall.SIGCONT, "etcd")
	at(60 * time.Second)
	close(stop)
	wg.Wait()
	writes, failed, worst := 0, 0, 0.0
	for s, c := range seconds {
		if s >= 60 {
			continue
		}
		writes += c.writes
		failed += c.failed
		if c.writes > 0 {
			worst = max(worst, float64(c.failed)/float64(c.writes))
		}
	}
	b.ReportMetric(float64(failed)/float64(max(writes, 1)), "failed-write-share-etcd-member-lost")
	b.ReportMetric(worst, "worst-second-failed-share")
	b.ReportMetric(float64(writes)/60, "writes/s")
}
