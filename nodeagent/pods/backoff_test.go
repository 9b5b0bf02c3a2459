package pods

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := containerBackoff{}
	t0 := time.Unix(0, 0)
	steps := []struct {
		at   time.Duration
		wait time.Duration
	}{
		{0, 0},                             // first restart: at once
		{5 * time.Second, 5 * time.Second}, // within 10s
		{10 * time.Second, 0},              // due: restart, next wait 20s
		{15 * time.Second, 15 * time.Second},
		{30 * time.Second, 0},                // next 40s
		{30*time.Second + 11*time.Minute, 0}, // a long healthy run resets it
		{30*time.Second + 11*time.Minute + time.Second, 9 * time.Second},
	}
	for _, s := range steps {
		if got := b.wait("app", t0.Add(s.at)); got != s.wait {
			t.Errorf("at %s: wait %s, want %s", s.at, got, s.wait)
		}
	}
	if w := b.waiting(t0.Add(30*time.Second + 11*time.Minute + time.Second)); w["app"].Reason != "CrashLoopBackOff" {
		t.Errorf("waiting = %v, want a back-off message for app", w)
	}
}
