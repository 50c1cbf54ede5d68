package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// entries returns n entries of size-byte commands (a ring of 16 distinct
// payloads), indexes from first, term 1, AppendedAt now (as a leader sets
// it).
func entries(first uint64, n, size int, payloads [][]byte) []*raft.Log {
	now := time.Now()
	logs := make([]*raft.Log, n)
	for i := range logs {
		idx := first + uint64(i)
		logs[i] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: payloads[idx%uint64(len(payloads))], AppendedAt: now}
	}
	return logs
}

func payloadRing(size int) [][]byte {
	ps := make([][]byte, 16)
	for i := range ps {
		ps[i] = Payload(size, uint64(i))
	}
	return ps
}

// next returns the index after s's last entry.
func next(s Store) (uint64, error) {
	last, err := s.LastIndex()
	return last + 1, err
}

// StoreLogs calls s.StoreLogs with batches of batch entries of size bytes,
// one caller (as raft does: one goroutine stores a node's entries), calls
// times or, when calls is 0, for d. Ops counts entries; each call is
// timed.
func StoreLogs(s Store, size, batch, calls int, d time.Duration) (Result, error) {
	ps := payloadRing(size)
	idx, err := next(s)
	if err != nil {
		return Result{}, err
	}
	var res Result
	t0 := time.Now()
	for i := 0; calls == 0 || i < calls; i++ {
		logs := entries(idx, batch, size, ps)
		c0 := time.Now()
		if err := s.StoreLogs(logs); err != nil {
			return Result{}, fmt.Errorf("store entries at %d: %w", idx, err)
		}
		c1 := time.Now()
		res.Lat = append(res.Lat, c1.Sub(c0))
		res.Ops += batch
		idx += uint64(batch)
		if calls == 0 && c1.Sub(t0) >= d {
			break
		}
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}

// Fill appends n entries of size bytes to s in batches of 64.
func Fill(s Store, size, n int) error {
	ps := payloadRing(size)
	idx, err := next(s)
	if err != nil {
		return err
	}
	for n > 0 {
		b := min(n, 64)
		if err := s.StoreLogs(entries(idx, b, size, ps)); err != nil {
			return fmt.Errorf("fill at %d: %w", idx, err)
		}
		idx += uint64(b)
		n -= b
	}
	return nil
}

// GetLog reads entries of s, sequentially (wrapping around) or at random
// indexes, reads times or, when reads is 0, for d; each read is timed and
// its index checked.
func GetLog(s Store, random bool, reads int, d time.Duration) (Result, error) {
	first, err := s.FirstIndex()
	if err != nil {
		return Result{}, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return Result{}, err
	}
	if first == 0 {
		return Result{}, errors.New("bench: GetLog of an empty store")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	span := last - first + 1
	var res Result
	var l raft.Log
	idx := first
	t0 := time.Now()
	for i := 0; reads == 0 || i < reads; i++ {
		if random {
			idx = first + rng.Uint64N(span)
		}
		c0 := time.Now()
		if err := s.GetLog(idx, &l); err != nil {
			return Result{}, fmt.Errorf("get %d: %w", idx, err)
		}
		c1 := time.Now()
		if l.Index != idx {
			return Result{}, fmt.Errorf("get %d returned entry %d", idx, l.Index)
		}
		res.Lat = append(res.Lat, c1.Sub(c0))
		res.Ops++
		if !random {
			if idx++; idx > last {
				idx = first
			}
		}
		if reads == 0 && i&255 == 0 && c1.Sub(t0) >= d {
			break
		}
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}

// Disk is a store's use of the disk.
type Disk struct {
	Allocated int64 // blocks allocated to its files (du)
	Apparent  int64 // the files' sizes (du --apparent-size)
	Entries   uint64
	Elapsed   time.Duration
}

// DiskUse runs a long life of a log under compaction: total entries of
// size bytes stored in batches of 64 and, every snapEvery entries, the
// prefix deleted down to the trailing newest ones (raft's DeleteRange
// after a snapshot, with its TrailingLogs). It returns the disk use of the
// store's directory after the run, the store still open, as a running node
// has it.
func DiskUse(s Store, dir string, size, total, snapEvery, trailing int) (Disk, error) {
	ps := payloadRing(size)
	idx, err := next(s)
	if err != nil {
		return Disk{}, err
	}
	t0 := time.Now()
	sinceSnap := 0
	for stored := 0; stored < total; {
		b := min(64, total-stored)
		if err := s.StoreLogs(entries(idx, b, size, ps)); err != nil {
			return Disk{}, fmt.Errorf("store at %d: %w", idx, err)
		}
		idx += uint64(b)
		stored += b
		if sinceSnap += b; sinceSnap >= snapEvery {
			sinceSnap = 0
			first, err := s.FirstIndex()
			if err != nil {
				return Disk{}, err
			}
			if last := idx - 1; last > uint64(trailing) && last-uint64(trailing) >= first {
				upTo := last - uint64(trailing)
				if err := s.DeleteRange(first, upTo); err != nil {
					return Disk{}, fmt.Errorf("delete [%d, %d]: %w", first, upTo, err)
				}
			}
		}
	}
	d := Disk{Elapsed: time.Since(t0)}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first > 0 {
		d.Entries = last - first + 1
	}
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		d.Apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			d.Allocated += st.Blocks * 512
		}
		return nil
	})
	return d, err
}
