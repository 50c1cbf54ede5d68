package harness

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names one of the workloads of issue 7.
type Workload string

// The workloads. Each runs at every record size; every implementation in
// its own equivalent durability mode.
const (
	// WBuffered: one writer, Append in Buffered mode.
	WBuffered Workload = "buffered"
	// WDurable: Case.Writers goroutines, each Append in Durable mode
	// (append, then wait for durability), no caller batching.
	WDurable Workload = "durable"
	// WBatch: one writer, AppendBatch of BatchSize records in Durable
	// mode.
	WBatch Workload = "batch64"
	// WReopen: reopen a log of Options.ReopenBytes and read it all.
	WReopen Workload = "reopen"
	// WRandom: Read by uniformly random sequence number over the same
	// log.
	WRandom Workload = "random"
	// WSeqRead: the read part of WReopen (derived, see SeqRead).
	WSeqRead Workload = "seqread"
	// WFollow: one durable writer, one follower; latency is append call
	// to the follower seeing the record.
	WFollow Workload = "follow"
)

// BatchSize is the batch of WBatch.
const BatchSize = 64

// Case is one cell row: a workload at a record size (and writer count).
type Case struct {
	Workload Workload
	Size     int
	Writers  int
}

func (c Case) String() string {
	s := fmt.Sprintf("%s/size=%d", c.Workload, c.Size)
	if c.Workload == WDurable {
		s += fmt.Sprintf("/writers=%d", c.Writers)
	}
	return s
}

// Mode returns the durability mode the case runs in.
func (c Case) Mode() Mode {
	if c.Workload == WBuffered {
		return Buffered
	}
	return Durable
}

// Result is what one implementation did in one case, summed over the
// rounds it ran.
type Result struct {
	Impl    string
	Records int64         // records appended or read
	Bytes   int64         // their payload bytes
	Elapsed time.Duration // time spent doing them
	Lat     Hist          // latency per operation (record; batch for WBatch)
	Sampled int           // latency recorded for one op in Sampled
	Syncs   int64         // fsyncs counted, -1 when the implementation cannot say
	Mallocs uint64        // heap allocations in the process while measuring
	PeakRSS int64         // highest VmHWM over the rounds, bytes
	// WReopen only: time in Open and in reading, over all passes.
	Open, Read time.Duration
	Passes     int
	LogRecords int64 // records in the log read (WReopen, WRandom)
	// Skip says why there is no result.
	Skip string
}

// RecordsPerSec returns records over elapsed time.
func (r *Result) RecordsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// MBPerSec returns payload megabytes (10^6) per second.
func (r *Result) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// SyncsPerRecord returns fsyncs per record, or -1 when unknown.
func (r *Result) SyncsPerRecord() float64 {
	if r.Syncs < 0 || r.Records == 0 {
		return -1
	}
	return float64(r.Syncs) / float64(r.Records)
}

// AllocsPerRecord returns heap allocations per record.
func (r *Result) AllocsPerRecord() float64 {
	if r.Records == 0 {
		return 0
	}
	return float64(r.Mallocs) / float64(r.Records)
}

// payloads is a ring of distinct incompressible payloads of one size, so a
// writer does not generate randomness while measured, and a compressing
// file system or device would gain nothing.
type payloads [][]byte

func newPayloads(size, n int, salt uint64) payloads {
	ps := make(payloads, n)
	for i := range ps {
		ps[i] = Payload(salt<<32|uint64(i+1), size)
	}
	return ps
}

// epoch is the zero of the timestamps written into follow payloads.
var epoch = time.Now()

// stamp writes the current time into p's first 8 bytes (WFollow).
func stamp(p []byte) { binary.LittleEndian.PutUint64(p, uint64(time.Since(epoch))) }

func stampAge(p []byte) time.Duration {
	return time.Since(epoch) - time.Duration(binary.LittleEndian.Uint64(p))
}

// writeSlice runs WBuffered, WDurable or WBatch on lg: c.Writers
// goroutines (1 for the others) take operations from a shared budget of
// maxOps until it is used up or until deadline, whichever is first. Every
// sample-th operation of each goroutine has its latency recorded. It
// returns the latencies, the records appended and the wall time.
func writeSlice(lg Log, c Case, maxOps int64, deadline time.Time, sample int, ring payloads) (Hist, int64, time.Duration, error) {
	writers := 1
	if c.Workload == WDurable {
		writers = max(c.Writers, 1)
	}
	perOp := int64(1)
	if c.Workload == WBatch {
		perOp = BatchSize
	}
	var (
		next    atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   Hist
		done    atomic.Int64
		firstEr error
	)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			var h Hist
			batch := make([][]byte, BatchSize)
			k := w * 7
			for i := 0; ; i++ {
				if stop.Load() || next.Add(1) > maxOps {
					break
				}
				timed := i%sample == 0
				if (timed || i%64 == 63) && time.Now().After(deadline) {
					stop.Store(true)
				}
				var t0 time.Time
				if timed {
					t0 = time.Now()
				}
				var err error
				if perOp == 1 {
					err = lg.Append(ring[k%len(ring)])
					k++
				} else {
					for j := range batch {
						batch[j] = ring[k%len(ring)]
						k++
					}
					err = lg.AppendBatch(batch)
				}
				if timed {
					h.Record(time.Since(t0))
				}
				if err != nil {
					stop.Store(true)
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					break
				}
				done.Add(perOp)
			}
			mu.Lock()
			total.Merge(&h)
			mu.Unlock()
		})
	}
	wg.Wait()
	return total, done.Load(), time.Since(start), firstEr
}
