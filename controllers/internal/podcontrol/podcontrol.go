// Package podcontrol creates and deletes a workload controller's pods with the
// bookkeeping each such write needs: expectations lowered for writes that will never
// show up in the cache, the stock SuccessfulCreate/FailedCreate/SuccessfulDelete/
// FailedDelete events, the per-controller counters, and slow-start batches so that a
// failing admission costs one request rather than hundreds. The caller records the
// expectations before calling.
package podcontrol

import (
	"context"
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeparts/kubeparts/controllers/internal/expectations"
	"github.com/kubeparts/kubeparts/controllers/internal/metrics"
)

// Control writes pods for one controller.
type Control struct {
	Client       client.Client
	Recorder     events.EventRecorder
	Expectations *expectations.Store
	// Controller is the canonical name, the metrics label.
	Controller string
}

// Create creates count pods made by newPod(i), in slow-start batches (1, 2, 4, ...),
// stopping after the first batch with a failure. Creations that failed or were never
// attempted are no longer expected for key.
func (c *Control) Create(ctx context.Context, owner runtime.Object, key string, count int, newPod func(i int) *corev1.Pod) error {
	next := 0
	var mu sync.Mutex
	attempted, failures := 0, []error{}
	for batch := 1; attempted < count; batch *= 2 {
		batch = min(batch, count-attempted)
		var wg sync.WaitGroup
		for range batch {
			pod := newPod(next)
			next++
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.createOne(ctx, owner, key, pod); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		attempted += batch
		if len(failures) > 0 {
			break
		}
	}
	for range count - attempted {
		c.Expectations.CreationObserved(key) // skipped: will never show up
	}
	return errors.Join(failures...)
}

// createOne creates a pod. A failed create is not expected any more, except after a
// timeout: the pod may exist and will show up in the cache.
func (c *Control) createOne(ctx context.Context, owner runtime.Object, key string, pod *corev1.Pod) error {
	err := c.Client.Create(ctx, pod)
	switch {
	case err == nil:
		metrics.PodsCreated.WithLabelValues(c.Controller).Inc()
		c.Recorder.Eventf(owner, pod, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "Created pod: %v", pod.Name)
		return nil
	case apierrors.IsTimeout(err):
		return nil
	}
	c.Expectations.CreationObserved(key)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return nil // the namespace is going away with the owner
	}
	c.Recorder.Eventf(owner, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "Error creating: %v", err)
	return err
}

// Delete deletes the pods in parallel, each only if it is still the pod that was chosen
// (UID precondition). Deletions that failed, or found the pod gone or replaced, are no
// longer expected for key; podKeys[i] is pods[i]'s key as the caller expected it.
func (c *Control) Delete(ctx context.Context, owner runtime.Object, key string, pods []*corev1.Pod, podKeys []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
			switch {
			case err == nil:
				metrics.PodsDeleted.WithLabelValues(c.Controller).Inc()
				c.Recorder.Eventf(owner, pod, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "Deleted pod: %v", pod.Name)
			case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
				c.Expectations.DeletionObserved(key, podKeys[i])
			default:
				c.Expectations.DeletionObserved(key, podKeys[i])
				c.Recorder.Eventf(owner, pod, corev1.EventTypeWarning, "FailedDelete", "Delete", "Error deleting: %v", err)
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
