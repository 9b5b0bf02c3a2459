// Package eventfilter limits the events a controller emits per object, as client-go's
// legacy recorder does for the stock controllers (a burst of 25, then one every five
// minutes, per source, object and type): without it, scaling one ReplicaSet to 1000
// pods writes 1000 events, and a controller costs the apiserver twice the writes of the
// stock one. Events dropped here are the ones the stock recorder would drop.
package eventfilter

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/lru"
)

const (
	// Burst and QPS mirror client-go's EventSourceObjectSpamFilter defaults.
	Burst = 25
	QPS   = 1.0 / 300
	// cacheSize bounds the objects remembered, as client-go's maxLruCacheEntries.
	cacheSize = 4096
)

// Recorder wraps an EventRecorder with a token bucket per regarded object and type.
type Recorder struct {
	inner   events.EventRecorder
	mu      sync.Mutex
	buckets *lru.Cache
	newRL   func() flowcontrol.PassiveRateLimiter
}

// New wraps inner.
func New(inner events.EventRecorder) *Recorder {
	return &Recorder{inner: inner, buckets: lru.New(cacheSize), newRL: func() flowcontrol.PassiveRateLimiter {
		return flowcontrol.NewTokenBucketPassiveRateLimiter(QPS, Burst)
	}}
}

// Eventf records the event unless the object has used up its budget.
func (r *Recorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	if !r.allow(regarding, eventtype) {
		return
	}
	r.inner.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *Recorder) allow(obj runtime.Object, eventtype string) bool {
	key := eventtype
	if m, err := meta.Accessor(obj); err == nil {
		key = fmt.Sprintf("%T/%s/%s/%s/%s", obj, m.GetNamespace(), m.GetName(), m.GetUID(), eventtype)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.buckets.Get(key)
	if !ok {
		v = r.newRL()
		r.buckets.Add(key, v)
	}
	return v.(flowcontrol.PassiveRateLimiter).TryAccept()
}
