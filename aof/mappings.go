package aof

import (
	"sync"

	"github.com/aof2/aof2/segment"
)

// DefaultMappedSegments is the default of Config.MappedSegments: how many
// sealed segments a log keeps mapped at most, beyond those a Reader leases: the others are mapped when read and
// unmapped again when the bound is reached (least recently used first).
// A segment not sealed yet (the active one, and those waiting for their
// seal) is always mapped, with its append buffer: two mappings, three for
// a segment of 8 MiB or more (the buffer's huge-page part is a mapping of
// its own to the kernel).
const DefaultMappedSegments = 64

// mappings bounds the sealed segments a log keeps mapped: a FIFO with a
// second chance (a segment read or leased since it was last looked at goes
// to the back once), so a log of any number of segments stays within the
// kernel's limit on mappings (vm.max_map_count, 65530 by default). A
// segment a Reader leases is never unmapped; one whose owner released it
// leaves the ring when its turn comes. Its lock is taken with no segment
// lock held, and it takes segment locks (Unmap) inside: segments call
// add through OnMap after they unlock.
type mappings struct {
	bound int

	mu   sync.Mutex
	ring []*segment.Segment // mapped sealed segments, oldest first
}

// watch registers a sealed segment that is mapped (just sealed, or opened
// sealed by recovery), and makes it register itself again whenever a read
// maps it after an unmap.
func (m *mappings) watch(s *segment.Segment) error {
	s.OnMap(func() { m.add(s) })
	return m.add(s)
}

// add counts s as mapped, and unmaps the oldest sealed segments nobody
// uses while more than bound are.
func (m *mappings) add(s *segment.Segment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ring = append(m.ring, s)
	var err error
	for tries := 2 * len(m.ring); len(m.ring) > m.bound && tries > 0; tries-- {
		old := m.ring[0]
		m.ring[0] = nil
		m.ring = m.ring[1:]
		if old == s || old.Referenced() {
			// The segment just mapped for a read, or one read since:
			// a second chance.
			m.ring = append(m.ring, old)
			continue
		}
		dropped, uerr := old.Unmap()
		if uerr != nil && err == nil {
			err = uerr
		}
		if !dropped {
			m.ring = append(m.ring, old) // leased: it stays mapped
		}
	}
	return err
}

// mapped returns how many sealed segments are counted as mapped.
func (m *mappings) mapped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ring)
}
