package server

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A CRI log as containerd writes it: a line split in two partial entries, both streams.
const criLog = `2026-11-22T10:00:00.000000001Z stdout F first
2026-11-22T10:00:01.5Z stderr F oops
2026-11-22T10:00:02Z stdout P par
2026-11-22T10:00:02.1Z stdout F tial
2026-11-22T10:00:03Z stdout F last
`

func TestCopyLog(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	stream := func(s string) *string { return &s }
	since := metav1.NewTime(time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC))
	now := time.Date(2026, 11, 22, 10, 0, 4, 0, time.UTC)
	tests := []struct {
		name string
		opts corev1.PodLogOptions
		want string
	}{
		{"all, partial entries joined", corev1.PodLogOptions{}, "first\noops\npartial\nlast\n"},
		{"tail 1", corev1.PodLogOptions{TailLines: i64(1)}, "last\n"},
		{"tail 2 counts file lines", corev1.PodLogOptions{TailLines: i64(2)}, "tial\nlast\n"},
		{"tail 0", corev1.PodLogOptions{TailLines: i64(0)}, ""},
		{"tail more than there is", corev1.PodLogOptions{TailLines: i64(100)}, "first\noops\npartial\nlast\n"},
		{"since time", corev1.PodLogOptions{SinceTime: &since}, "oops\npartial\nlast\n"},
		{"since seconds", corev1.PodLogOptions{SinceSeconds: i64(2)}, "partial\nlast\n"},
		{"timestamps", corev1.PodLogOptions{TailLines: i64(1), Timestamps: true}, "2026-11-22T10:00:03Z last\n"},
		{"limit bytes cuts mid-line", corev1.PodLogOptions{LimitBytes: i64(8)}, "first\noo"},
		{"stderr only", corev1.PodLogOptions{Stream: stream(corev1.LogStreamStderr)}, "oops\n"},
		{"stdout only", corev1.PodLogOptions{Stream: stream(corev1.LogStreamStdout)}, "first\npartial\nlast\n"},
	}
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(criLog), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			err = copyLog(context.Background(), &out, f, logFilter(&tt.opts, now), false, nil)
			if err != nil && !errors.Is(err, errLimitReached) {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// Following stops once the container is no longer running and everything
// written before is out.
func TestCopyLogFollowEndsWithContainer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(criLog), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checks := 0
	running := func(context.Context) bool {
		checks++
		if checks == 1 {
			// Written while following: must still come out.
			w, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			_, _ = w.WriteString("2026-11-22T10:00:05Z stdout F bye\n")
			w.Close()
			return true
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := copyLog(ctx, &out, f, filter{tail: 1, limit: -1}, true, running); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("follow did not end when the container stopped")
	}
	if out.String() != "last\nbye\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestPodLogOptions(t *testing.T) {
	opts, err := podLogOptions(url.Values{"follow": {"true"}, "tailLines": {"5"}, "sinceTime": {"2026-11-22T10:00:00Z"}, "stream": {"Stderr"}})
	if err != nil || !opts.Follow || *opts.TailLines != 5 || opts.SinceTime.Unix() != 1795341600 || *opts.Stream != "Stderr" {
		t.Errorf("got %+v %v", opts, err)
	}
	for _, bad := range []url.Values{{"tailLines": {"-1"}}, {"follow": {"maybe"}}, {"sinceTime": {"yesterday"}}, {"limitBytes": {"0"}}, {"stream": {"both"}}} {
		if _, err := podLogOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
