package proxy

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// The endpoints of every service port live in a few shared maps, keyed by a
// number: the port's chain DNATs through
//
//	numgen random mod N offset B map @endpoints-tcp-MM
//
// with its endpoints at keys B..B+N-1. An anonymous map per Service (the
// obvious rule) costs nft about a millisecond each, 10 s of a full sync at
// 10,000 Services; one map for all of them is as slow, since the kernel's
// cost of an element grows with the rules bound to its map. A few dozen maps
// of a few hundred rules each keep both small. A map's value is typed with
// its protocol's port (nft refuses a map typed with the generic th dport in
// a later transaction), so each protocol has maps of its own.
var endpointMaps = map[string]int{"tcp": 64, "udp": 16, "sctp": 4}

// A slot is a port's range of keys: id<<18, with four sub-ranges of 65,536
// keys (one per dispatch a port may have: internal, cluster, local).
const (
	slotShift    = 18
	subRangeBits = 16
	maxSlotIDs   = 1 << (32 - slotShift)
)

func endpointMapName(proto string, i int) string { return fmt.Sprintf("endpoints-%s-%02d", proto, i) }

// isEndpointMap reports whether m is one of the endpoint maps (whose keys
// are unique by construction, so they need no claims).
func isEndpointMap(m string) bool { return strings.HasPrefix(m, "endpoints-") }

// endpointSlot is where a service port's endpoints go.
type endpointSlot struct {
	ok bool   // false: none, the port dispatches through an anonymous map
	m  string // which endpoint map
	id uint32
}

// offset is the first key of the port's dispatch number sub (0-3).
func (s endpointSlot) offset(sub int) uint32 { return s.id<<slotShift | uint32(sub)<<subRangeBits }

// slots hands out endpoint slots: a port keeps its slot while it exists, so a
// partial sync changes only the elements and rules that changed.
type slots struct {
	byPort map[string]endpointSlot
	next   map[string]uint32   // map -> next never used id
	free   map[string][]uint32 // map -> ids given back
}

func newSlots() *slots {
	return &slots{byPort: map[string]endpointSlot{}, next: map[string]uint32{}, free: map[string][]uint32{}}
}

// assign returns the slot of portKey, a port of protocol proto (tcp, udp,
// sctp), handing out one the first time.
func (s *slots) assign(portKey, proto string) endpointSlot {
	if sl, ok := s.byPort[portKey]; ok {
		return sl
	}
	n, ok := endpointMaps[proto]
	if !ok {
		return endpointSlot{}
	}
	h := fnv.New32a()
	h.Write([]byte(portKey))
	m := endpointMapName(proto, int(h.Sum32()%uint32(n)))
	sl := endpointSlot{ok: true, m: m}
	if free := s.free[m]; len(free) > 0 {
		sl.id, s.free[m] = free[len(free)-1], free[:len(free)-1]
	} else if s.next[m] < maxSlotIDs {
		sl.id = s.next[m]
		s.next[m]++
	} else {
		return endpointSlot{} // a quarter million ports in one map: fall back
	}
	s.byPort[portKey] = sl
	return sl
}

// release gives a gone port's slot back.
func (s *slots) release(portKey string) {
	if sl, ok := s.byPort[portKey]; ok {
		delete(s.byPort, portKey)
		s.free[sl.m] = append(s.free[sl.m], sl.id)
	}
}
