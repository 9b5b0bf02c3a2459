package swap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Diff writes what the plan changes, file by file, in unified-diff headers with every
// removed line "-" and added line "+" (the files are short manifests).
func (p *Plan) Diff(w io.Writer) {
	for _, c := range p.Changes {
		from, to := "a"+c.Path, "b"+c.Path
		if c.Old == nil {
			from = "/dev/null"
		}
		if c.New == nil {
			to = "/dev/null"
		}
		fmt.Fprintf(w, "--- %s\n+++ %s\n", from, to)
		oldLines, newLines := lines(c.Old), lines(c.New)
		// Common head and tail stay as context; the middle is what changed.
		head := 0
		for head < len(oldLines) && head < len(newLines) && oldLines[head] == newLines[head] {
			head++
		}
		tail := 0
		for tail < len(oldLines)-head && tail < len(newLines)-head && oldLines[len(oldLines)-1-tail] == newLines[len(newLines)-1-tail] {
			tail++
		}
		fmt.Fprintf(w, "@@ -%d,%d +%d,%d @@\n", head+1, len(oldLines)-head-tail, head+1, len(newLines)-head-tail)
		for _, l := range oldLines[head : len(oldLines)-tail] {
			fmt.Fprintf(w, "-%s\n", l)
		}
		for _, l := range newLines[head : len(newLines)-tail] {
			fmt.Fprintf(w, "+%s\n", l)
		}
	}
}

func lines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Health tells when a swapped piece is in charge.
type Health interface {
	// Leader returns the Lease's current holder ("" when none).
	Leader(ctx context.Context, lease string) (string, error)
	// WaitInCharge returns once a Ready mirror pod named pod-<node> runs and lease (if
	// not empty) is held by a holder other than previous, or an error saying what is
	// missing when ctx ends.
	WaitInCharge(ctx context.Context, pod, lease, previous string) error
}

// Result says how a swap ended.
type Result struct {
	Backup     string // the directory holding the files as they were
	RolledBack bool
}

// Apply makes the plan's changes, after saving every file it touches under the host's
// backup directory, then waits (up to timeout) until the new piece is in charge. If it is
// not, every file is put back as it was and Apply waits for the previous piece again; the
// error says why the swap failed and whether the rollback worked.
func (p *Plan) Apply(ctx context.Context, h Host, health Health, timeout time.Duration, now func() time.Time, log io.Writer) (Result, error) {
	before, err := health.Leader(ctx, p.Lease)
	if err != nil {
		return Result{}, fmt.Errorf("reading Lease %s: %w", p.Lease, err)
	}
	backup := filepath.Join(h.BackupDir(), now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(backup, 0o700); err != nil {
		return Result{}, err
	}
	for _, c := range p.Changes {
		if c.Old == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(backup, filepath.Base(c.Path)), c.Old, 0o600); err != nil {
			return Result{}, fmt.Errorf("backup of %s: %w", c.Path, err)
		}
	}
	res := Result{Backup: backup}
	fmt.Fprintf(log, "swap %s to %s: files saved in %s\n", p.Role, p.To, backup)
	if err := p.write(false); err != nil {
		return res, p.rollback(ctx, health, timeout, before, log, &res, err)
	}
	fmt.Fprintf(log, "swap %s to %s: manifests written; waiting up to %s for %s to be Ready and to take Lease %s\n", p.Role, p.To, timeout, p.Pod, p.Lease)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := health.WaitInCharge(wctx, p.Pod, p.Lease, before); err != nil {
		return res, p.rollback(ctx, health, timeout, before, log, &res, err)
	}
	fmt.Fprintf(log, "swap %s to %s: done\n", p.Role, p.To)
	return res, nil
}

// write makes the changes (undo: puts every file back as it was).
func (p *Plan) write(undo bool) error {
	var errs []error
	for _, c := range p.Changes {
		content := c.New
		if undo {
			content = c.Old
		}
		if content == nil {
			if err := os.Remove(c.Path); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		// Written beside and renamed: the kubelet never reads half a manifest. The
		// temporary name starts with a dot, which the kubelet ignores.
		tmp := filepath.Join(filepath.Dir(c.Path), "."+filepath.Base(c.Path)+".kubeparts-swap")
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Rename(tmp, c.Path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Plan) rollback(ctx context.Context, health Health, timeout time.Duration, before string, log io.Writer, res *Result, cause error) error {
	fmt.Fprintf(log, "swap %s to %s: failed (%v); rolling back\n", p.Role, p.To, cause)
	res.RolledBack = true
	if err := p.write(true); err != nil {
		return fmt.Errorf("%w; rollback failed too: %v (the files as they were are in %s)", cause, err, res.Backup)
	}
	previous := p.previousPod()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The Lease may still name a holder from before: the previous piece's pod
	// Ready again is what counts.
	if err := health.WaitInCharge(wctx, previous, "", ""); err != nil {
		return fmt.Errorf("%w; rolled back, but %s is not back in charge yet: %v", cause, previous, err)
	}
	return fmt.Errorf("%w; rolled back: %s is in charge again", cause, previous)
}

// previousPod is the mirror pod name of the piece that ran before the swap.
func (p *Plan) previousPod() string {
	switch {
	case p.Role == RoleScheduler && p.To == ToKubeparts:
		return "kube-scheduler"
	case p.Role == RoleScheduler:
		return "kubeparts-scheduler"
	}
	return "kube-controller-manager"
}
