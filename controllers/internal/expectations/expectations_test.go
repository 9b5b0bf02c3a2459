package expectations

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestExpectations(t *testing.T) {
	type step struct {
		do   func(s *Store, c *clocktesting.FakePassiveClock)
		want bool // Satisfied("ns/rs") after the step
	}
	const key = "ns/rs"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nothing recorded", []step{{func(*Store, *clocktesting.FakePassiveClock) {}, true}}},
		{"creations pending until all observed", []step{
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.ExpectCreations(key, 2) }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.CreationObserved(key) }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.CreationObserved(key) }, true},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.CreationObserved(key) }, true},
		}},
		{"deletions tracked per pod, repeats ignored", []step{
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.ExpectDeletions(key, []string{"ns/a", "ns/b"}) }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.DeletionObserved(key, "ns/a") }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.DeletionObserved(key, "ns/a") }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.DeletionObserved(key, "ns/other") }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.DeletionObserved(key, "ns/b") }, true},
		}},
		{"stale expectations expire after the TTL", []step{
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.ExpectCreations(key, 3) }, false},
			{func(_ *Store, c *clocktesting.FakePassiveClock) { c.SetTime(c.Now().Add(DefaultTTL)) }, false},
			{func(_ *Store, c *clocktesting.FakePassiveClock) { c.SetTime(c.Now().Add(time.Second)) }, true},
		}},
		{"forget clears", []step{
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.ExpectCreations(key, 1) }, false},
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.Forget(key) }, true},
		}},
		{"other keys do not interfere", []step{
			{func(s *Store, _ *clocktesting.FakePassiveClock) { s.ExpectCreations("ns/other", 1) }, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
			s := New(c, DefaultTTL)
			for i, st := range tc.steps {
				st.do(s, c)
				if got := s.Satisfied(key); got != st.want {
					t.Fatalf("step %d: Satisfied = %v, want %v", i, got, st.want)
				}
			}
		})
	}
}
