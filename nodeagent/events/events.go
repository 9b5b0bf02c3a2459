// Package events writes the agent's Events the way the kubelet's do through
// client-go's event broadcaster: source kubelet/<node>, repeats of an event
// counted on one object (count, lastTimestamp), more than ten variants of
// one reason on one object within ten minutes folded into a "(combined from
// similar events)" event, at most 25 events per object in a burst refilled
// one per five minutes, a bounded queue that drops rather than blocks.
//
// It is its own small recorder rather than client-go's because that one
// patches repeats with strategic merge patches, which links the OpenAPI and
// managed-fields machinery into the agent (see package kubeclient for why the
// agent's size matters); a JSON merge patch of the three changing fields does
// the same here.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Recorder is the part of client-go's events.Recorder the agent uses;
// record.FakeRecorder satisfies it in tests.
type Recorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// The stock correlator's limits (client-go tools/record).
const (
	queueLength      = 1000
	cacheEntries     = 4096
	aggregateAfter   = 10
	aggregateWindow  = 10 * time.Minute
	spamBurst        = 25
	spamRefill       = 5 * time.Minute
	maxTries         = 12
	retryInterval    = 10 * time.Second
	combinedPrefix   = "(combined from similar events): "
	defaultNamespace = metav1.NamespaceDefault
)

// Broadcaster sends the events of its recorders, one at a time, in order.
type Broadcaster struct {
	client kubeclient.CoreV1Interface
	queue  chan *corev1.Event
	now    func() time.Time
	retry  time.Duration

	// Owned by the sending goroutine.
	seen    *lru[*corev1.Event]  // last written event per exact key
	similar *lru[*similarEvents] // variants per key without the message
	spam    *lru[*bucket]        // tokens per source and object
}

type similarEvents struct {
	messages map[string]bool
	since    time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBroadcaster returns a broadcaster writing through client; Run sends.
func NewBroadcaster(client kubeclient.CoreV1Interface) *Broadcaster {
	return &Broadcaster{client: client, queue: make(chan *corev1.Event, queueLength), now: time.Now, retry: retryInterval,
		seen: newLRU[*corev1.Event](cacheEntries), similar: newLRU[*similarEvents](cacheEntries), spam: newLRU[*bucket](cacheEntries)}
}

// NewRecorder returns a recorder for one source (kubelet on a node).
func (b *Broadcaster) NewRecorder(source corev1.EventSource) Recorder {
	return recorder{b, source}
}

// Run writes queued events until ctx ends.
func (b *Broadcaster) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-b.queue:
			b.send(ctx, e)
		}
	}
}

type recorder struct {
	b      *Broadcaster
	source corev1.EventSource
}

func (r recorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if eventtype != corev1.EventTypeNormal && eventtype != corev1.EventTypeWarning {
		klog.ErrorS(nil, "Unsupported event type", "type", eventtype, "reason", reason)
		return
	}
	ref, err := reference(obj)
	if err != nil {
		klog.ErrorS(err, "Could not make an event reference", "reason", reason)
		return
	}
	now := metav1.NewTime(r.b.now())
	ns := ref.Namespace
	if ns == "" {
		ns = defaultNamespace
	}
	e := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: ns},
		InvolvedObject:      *ref,
		Reason:              reason,
		Message:             fmt.Sprintf(messageFmt, args...),
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		Type:                eventtype,
		Source:              r.source,
		ReportingController: r.source.Component,
		ReportingInstance:   r.source.Host,
	}
	select {
	case r.b.queue <- e:
	default:
		klog.V(2).InfoS("Event queue full, dropping event", "reason", reason, "object", klog.KRef(ref.Namespace, ref.Name))
	}
}

// reference points at obj: an ObjectReference as given, else the object's
// kind (from the agent's scheme), name, namespace, UID and resourceVersion.
func reference(obj runtime.Object) (*corev1.ObjectReference, error) {
	if ref, ok := obj.(*corev1.ObjectReference); ok {
		return ref.DeepCopy(), nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	gvks, _, err := kubeclient.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	apiVersion, kind := gvks[0].ToAPIVersionAndKind()
	return &corev1.ObjectReference{Kind: kind, APIVersion: apiVersion, Name: m.GetName(), Namespace: m.GetNamespace(),
		UID: m.GetUID(), ResourceVersion: m.GetResourceVersion()}, nil
}

// send correlates e with what was sent before and writes it, retrying
// errors that are not the API server's answer.
func (b *Broadcaster) send(ctx context.Context, e *corev1.Event) {
	if !b.allow(e) {
		klog.V(4).InfoS("Event throttled", "reason", e.Reason, "object", klog.KRef(e.InvolvedObject.Namespace, e.InvolvedObject.Name))
		return
	}
	e, patch := b.correlate(e)
	for try := 1; ; try++ {
		written, err := b.write(ctx, e, patch)
		if err == nil {
			b.seen.put(exactKey(e), written)
			return
		}
		if _, isStatus := err.(apierrors.APIStatus); isStatus || try >= maxTries || ctx.Err() != nil {
			if apierrors.IsAlreadyExists(err) {
				return // written before, by an earlier try
			}
			klog.ErrorS(err, "Could not write event", "reason", e.Reason, "object", klog.KRef(e.InvolvedObject.Namespace, e.InvolvedObject.Name))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.retry):
		}
	}
}

func (b *Broadcaster) write(ctx context.Context, e *corev1.Event, patch []byte) (*corev1.Event, error) {
	events := b.client.Events(e.Namespace)
	if patch != nil {
		written, err := events.Patch(ctx, e.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if !apierrors.IsNotFound(err) {
			return written, err
		}
		// The Event expired (its TTL) since: write it anew.
		e = e.DeepCopy()
		e.ResourceVersion = ""
	}
	return events.Create(ctx, e, metav1.CreateOptions{})
}

// allow takes a token from the event's source-and-object bucket.
func (b *Broadcaster) allow(e *corev1.Event) bool {
	o := e.InvolvedObject
	key := strings.Join([]string{e.Source.Component, e.Source.Host, o.Kind, o.Namespace, o.Name, string(o.UID), o.APIVersion, e.Type}, "\x00")
	now := b.now()
	bk, ok := b.spam.get(key)
	if !ok {
		bk = &bucket{tokens: spamBurst, at: now}
		b.spam.put(key, bk)
	}
	bk.tokens = min(spamBurst, bk.tokens+float64(now.Sub(bk.at))/float64(spamRefill))
	bk.at = now
	if bk.tokens < 1 {
		return false
	}
	bk.tokens--
	return true
}

// correlate folds many variants of one reason into a combined event and
// turns a repeat into a patch of the event written before.
func (b *Broadcaster) correlate(e *corev1.Event) (*corev1.Event, []byte) {
	now := b.now()
	similarKey := similarKey(e)
	s, ok := b.similar.get(similarKey)
	if !ok || now.Sub(s.since) > aggregateWindow {
		s = &similarEvents{messages: map[string]bool{}, since: now}
		b.similar.put(similarKey, s)
	}
	s.messages[e.Message] = true
	if len(s.messages) >= aggregateAfter {
		// From here on all variants count on one combined event, named by
		// the similar key rather than by its message.
		e.Message = combinedPrefix + e.Message
	}
	prev, ok := b.seen.get(exactKey(e))
	if !ok {
		return e, nil
	}
	e.Name, e.Namespace, e.FirstTimestamp = prev.Name, prev.Namespace, prev.FirstTimestamp
	e.Count = prev.Count + 1
	patch, _ := json.Marshal(map[string]any{"count": e.Count, "lastTimestamp": e.LastTimestamp, "message": e.Message})
	return e, patch
}

func similarKey(e *corev1.Event) string {
	o := e.InvolvedObject
	return strings.Join([]string{e.Source.Component, e.Source.Host, o.Kind, o.Namespace, o.Name, string(o.UID), o.APIVersion, o.FieldPath, e.Type, e.Reason}, "\x00")
}

// exactKey is the similar key and the message; a combined event's message
// is its prefix alone, so that all its variants land on it.
func exactKey(e *corev1.Event) string {
	msg := e.Message
	if strings.HasPrefix(msg, combinedPrefix) {
		msg = combinedPrefix
	}
	return similarKey(e) + "\x00" + msg
}
