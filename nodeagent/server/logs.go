package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/nodeagent/crilog"
)

// serveLogs streams a container's log as the kubelet's /containerLogs does:
// the CRI log file decoded (partial lines joined), with follow, previous,
// tailLines, sinceSeconds/sinceTime, timestamps, limitBytes and stream.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := podLogOptions(r.URL.Query())
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to decode query: %v", err), http.StatusBadRequest)
		return
	}
	pod, ok := s.pod(w, r.PathValue("namespace"), r.PathValue("pod"))
	if !ok {
		return
	}
	c, err := s.container(r.Context(), pod, r.PathValue("container"), opts.Previous)
	if err != nil {
		writeError(w, err)
		return
	}
	if c.LogPath == "" {
		http.Error(w, fmt.Sprintf("container %q in pod %q has no log file", r.PathValue("container"), pod.Name), http.StatusNotFound)
		return
	}
	f, err := os.Open(c.LogPath)
	if err != nil {
		writeError(w, &httpError{http.StatusNotFound, fmt.Sprintf("failed to open log file %q: %v", c.LogPath, err)})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Transfer-Encoding", "chunked")
	running := func(ctx context.Context) bool {
		st, err := s.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		return err == nil && st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	follow := opts.Follow && !opts.Previous
	if err := copyLog(r.Context(), w, f, logFilter(opts, time.Now()), follow, running); err != nil && !errors.Is(err, errLimitReached) {
		// The header is out already: all that is left is to stop.
		return
	}
}

// podLogOptions reads the query kube-apiserver sends (the PodLogOptions
// fields by their JSON names).
func podLogOptions(q url.Values) (*corev1.PodLogOptions, error) {
	opts := &corev1.PodLogOptions{}
	var errs []error
	flag := func(name string, into *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
			*into = b
		}
	}
	number := func(name string, min int64) *int64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s=%q: must be an integer >= %d", name, v, min))
			return nil
		}
		return &n
	}
	flag("follow", &opts.Follow)
	flag("previous", &opts.Previous)
	flag("timestamps", &opts.Timestamps)
	opts.TailLines, opts.LimitBytes, opts.SinceSeconds = number("tailLines", 0), number("limitBytes", 1), number("sinceSeconds", 1)
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinceTime=%q: %w", v, err))
		}
		opts.SinceTime = &metav1.Time{Time: t}
	}
	if v := q.Get("stream"); v != "" {
		if v != corev1.LogStreamStdout && v != corev1.LogStreamStderr && v != corev1.LogStreamAll {
			errs = append(errs, fmt.Errorf("stream=%q: want Stdout, Stderr or All", v))
		}
		opts.Stream = &v
	}
	return opts, errors.Join(errs...)
}

// filter says which entries of a CRI log go out and how.
type filter struct {
	tail       int64 // -1: all
	since      time.Time
	timestamps bool
	limit      int64 // -1: no limit
	stream     string
}

func logFilter(opts *corev1.PodLogOptions, now time.Time) filter {
	f := filter{tail: -1, limit: -1, timestamps: opts.Timestamps}
	if opts.TailLines != nil {
		f.tail = *opts.TailLines
	}
	if opts.LimitBytes != nil {
		f.limit = *opts.LimitBytes
	}
	if opts.SinceSeconds != nil {
		f.since = now.Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	if opts.SinceTime != nil {
		f.since = opts.SinceTime.Time
	}
	if opts.Stream != nil && *opts.Stream != corev1.LogStreamAll {
		f.stream = map[string]string{corev1.LogStreamStdout: "stdout", corev1.LogStreamStderr: "stderr"}[*opts.Stream]
	}
	return f
}

var errLimitReached = errors.New("limitBytes reached")

// copyLog writes the log's entries from its tail (or start) to w; with follow
// it then waits for more until the container stops running or ctx ends.
func copyLog(ctx context.Context, w io.Writer, f *os.File, flt filter, follow bool, running func(context.Context) bool) error {
	if flt.tail >= 0 {
		off, err := crilog.TailOffset(f, flt.tail)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	out := &limitWriter{w: w, left: flt.limit}
	flusher, _ := w.(http.Flusher)
	r := bufio.NewReaderSize(f, 64<<10)
	var pending []byte // a line read before its newline was written
	lastCheck := time.Now()
	for {
		chunk, err := r.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			if e, perr := crilog.Parse(pending); perr == nil && keep(e, flt) {
				if werr := writeEntry(out, e, flt.timestamps); werr != nil {
					return werr
				}
			}
			pending = pending[:0]
			continue
		}
		if err != io.EOF {
			return err
		}
		// What was read goes out now, in a chunk of its own ahead of the
		// response's end, as the kubelet's flushing writer sends it:
		// kube-apiserver's websocket log reader drops the data of a read that
		// also returns EOF.
		if flusher != nil {
			flusher.Flush()
		}
		if !follow {
			return nil
		}
		// At the end of what is written: stop once the container has
		// exited (after a last read), else wait for more.
		if time.Since(lastCheck) > time.Second {
			lastCheck = time.Now()
			if !running(ctx) {
				follow = false
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func keep(e crilog.Entry, flt filter) bool {
	if !flt.since.IsZero() && e.Time.Before(flt.since) {
		return false
	}
	return flt.stream == "" || e.Stream == flt.stream
}

func writeEntry(w io.Writer, e crilog.Entry, timestamps bool) error {
	if timestamps {
		if _, err := io.WriteString(w, e.Time.Format(time.RFC3339Nano)+" "); err != nil {
			return err
		}
	}
	if _, err := w.Write(e.Content); err != nil {
		return err
	}
	if !e.Partial {
		_, err := w.Write([]byte{'\n'})
		return err
	}
	return nil
}

// limitWriter writes at most left bytes (-1: any), then reports errLimitReached.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left < 0 {
		return l.w.Write(p)
	}
	if l.left == 0 {
		return 0, errLimitReached
	}
	cut := false
	if int64(len(p)) > l.left {
		p, cut = p[:l.left], true
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && cut {
		err = errLimitReached
	}
	return n, err
}
