package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFootprintMeasures runs each footprint measurement briefly on every
// store that opens sized logs and checks it counted what it did: every
// Open and append timed, the load's bytes all appended, each open log's
// file descriptors seen, and nothing left behind. No figure is asserted
// beyond counts.
func TestFootprintMeasures(t *testing.T) {
	for _, impl := range Impls() {
		if impl.OpenSized == nil {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			dir := t.TempDir()
			ot, err := MeasureOpens(impl, dir, 3)
			if err != nil {
				t.Fatal(err)
			}
			if ot.New.Count() != 3 || ot.Reopen.Count() != 3 || ot.FirstAppend.Count() != 3 {
				t.Errorf("opens: %d new, %d reopens, %d first appends timed, want 3 each", ot.New.Count(), ot.Reopen.Count(), ot.FirstAppend.Count())
			}
			m, err := MeasureMemory(impl, dir, 4096, 1<<20, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if m.Loaded != 1<<20 || m.LoadTime <= 0 || m.LoadPeak <= 0 {
				t.Errorf("memory: %+v: want 1 MiB loaded, a load time and a peak", m)
			}
			root := filepath.Join(dir, "many")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			fds0, err := CountFDs()
			if err != nil {
				t.Fatal(err)
			}
			many, err := MeasureManyLogs(root, func(d string) (Log, error) { return impl.OpenSized(d, Durable, 1<<20) }, 3, 2, Payload(1, 100))
			if err != nil {
				t.Fatal(err)
			}
			if many.Logs != 3 || many.FDs < 3 || many.Open <= 0 || many.Disk <= 0 {
				t.Errorf("many logs: %+v: want 3 logs holding at least a file descriptor each, disk used, Open timed", many)
			}
			if fds, err := CountFDs(); err != nil || fds != fds0 {
				t.Errorf("after many logs: %d file descriptors (%v), %d before: not all closed", fds, err, fds0)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "open-") {
					t.Errorf("MeasureOpens left %s behind", e.Name())
				}
			}
		})
	}
}
