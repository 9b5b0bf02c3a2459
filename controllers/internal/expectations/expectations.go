// Package expectations remembers the pod creations and deletions a workload controller
// has asked for and not yet seen come back through its informer cache. Until they are
// seen (or time out), the cache is known to be stale for that object and the controller
// must not scale it again, or it would create duplicates or delete too many.
package expectations

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// DefaultTTL bounds how long a controller waits for its own writes to show up before it
// trusts the cache again: a lost watch event must not stall an object for ever.
const DefaultTTL = 5 * time.Minute

type entry struct {
	adds      int
	deletions map[string]struct{} // keys (namespace/name) of pods asked to be deleted
	setAt     time.Time
}

// Store holds expectations per controller key (namespace/name of the owner).
type Store struct {
	mu    sync.Mutex
	items map[string]*entry
	clock clock.PassiveClock
	ttl   time.Duration
}

// New returns an empty store; a nil clock means the real one.
func New(c clock.PassiveClock, ttl time.Duration) *Store {
	if c == nil {
		c = clock.RealClock{}
	}
	return &Store{items: map[string]*entry{}, clock: c, ttl: ttl}
}

// Satisfied reports whether the owner may be scaled: nothing is pending, or what is
// pending has outlived the TTL.
func (s *Store) Satisfied(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[key]
	if !ok {
		return true
	}
	if e.adds <= 0 && len(e.deletions) == 0 {
		return true
	}
	return s.clock.Since(e.setAt) > s.ttl
}

// ExpectCreations records that n pods are about to be created for key. It replaces any
// earlier expectation, which Satisfied has already declared met or expired.
func (s *Store) ExpectCreations(key string, n int) {
	s.set(key, n, nil)
}

// ExpectDeletions records that the pods named by podKeys are about to be deleted.
func (s *Store) ExpectDeletions(key string, podKeys []string) {
	s.set(key, 0, podKeys)
}

// Expect records creations and deletions about to happen in the same sync.
func (s *Store) Expect(key string, creations int, podKeys []string) {
	s.set(key, creations, podKeys)
}

func (s *Store) set(key string, adds int, podKeys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &entry{adds: adds, deletions: map[string]struct{}{}, setAt: s.clock.Now()}
	for _, k := range podKeys {
		e.deletions[k] = struct{}{}
	}
	s.items[key] = e
}

// CreationObserved records that the cache has shown one created pod of key, or that a
// creation was abandoned (it failed, or was skipped) and will never show.
func (s *Store) CreationObserved(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok && e.adds > 0 {
		e.adds--
	}
}

// DeletionObserved records that the cache has shown podKey gone or terminating, or that
// its deletion failed and will never show.
func (s *Store) DeletionObserved(key, podKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		delete(e.deletions, podKey)
	}
}

// Forget drops everything about key, once its owner is gone.
func (s *Store) Forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, key)
}
