package harness

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestRoundTrip: every implementation, in every mode it has, appends
// records one by one and in a batch, closes (durable), reopens, and reads
// them all back equal, by Scan and, where it has one, by Read.
func TestRoundTrip(t *testing.T) {
	for _, impl := range Impls() {
		for _, mode := range impl.Modes {
			t.Run(impl.Name+"/"+mode.String(), func(t *testing.T) {
				dir := t.TempDir()
				lg, err := impl.Open(dir, mode)
				if err != nil {
					t.Fatal(err)
				}
				var want [][]byte
				for i := range 50 {
					p := Payload(uint64(i+1), 1+i*37)
					if err := lg.Append(p); err != nil {
						t.Fatal(err)
					}
					want = append(want, p)
				}
				var batch [][]byte
				for i := range 64 {
					batch = append(batch, Payload(uint64(51+i), 64+i))
				}
				if err := lg.AppendBatch(batch); err != nil {
					t.Fatal(err)
				}
				want = append(want, batch...)
				if mode == Durable && lg.Syncs() == 0 {
					t.Errorf("durable mode counted no syncs")
				}
				if err := lg.Close(); err != nil {
					t.Fatal(err)
				}

				lg, err = impl.Open(dir, mode)
				if err != nil {
					t.Fatal(err)
				}
				defer lg.Close()
				n := 0
				err = lg.Scan(func(seq uint64, p []byte) error {
					if seq != uint64(n+1) {
						return fmt.Errorf("scan: seq %d, want %d", seq, n+1)
					}
					if n >= len(want) || !bytes.Equal(p, want[n]) {
						return fmt.Errorf("scan: record %d differs", seq)
					}
					n++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n != len(want) {
					t.Fatalf("scan read %d records, want %d", n, len(want))
				}
				for _, seq := range []uint64{1, 17, 50, 51, 114} {
					got, err := lg.Read(seq, nil)
					if errors.Is(err, ErrUnsupported) {
						break
					}
					if err != nil {
						t.Fatalf("read %d: %v", seq, err)
					}
					if !bytes.Equal(got, want[seq-1]) {
						t.Fatalf("read %d: differs", seq)
					}
				}
				if _, err := lg.Read(uint64(len(want)+1), nil); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("read past the end: %v, want ErrNotFound", err)
				}
			})
		}
	}
}
