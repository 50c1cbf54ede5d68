package harness

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunEveryWorkload runs every workload briefly for every
// implementation and checks each one that can run it did some work, that
// the ones that cannot say why, and that the report renders. No timing is
// asserted.
func TestRunEveryWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	o := Options{Dir: t.TempDir(), Rounds: 2, Slice: 15 * time.Millisecond, SliceBytes: 1 << 20, ReopenBytes: 256 << 10}
	var crs []CaseResult
	for _, c := range []Case{
		{Workload: WBuffered, Size: 256},
		{Workload: WDurable, Size: 256, Writers: 1},
		{Workload: WDurable, Size: 64, Writers: 8},
		{Workload: WBatch, Size: 4096},
		{Workload: WFollow, Size: 64},
	} {
		rs, err := RunCase(o, c)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		crs = append(crs, CaseResult{Case: c, Results: rs})
	}
	ro, rr, err := RunReadCases(o, 100)
	if err != nil {
		t.Fatal(err)
	}
	crs = append(crs, CaseResult{Case: Case{Workload: WReopen, Size: 100}, Results: ro},
		CaseResult{Case: Case{Workload: WRandom, Size: 100}, Results: rr})
	for _, cr := range crs {
		for _, r := range cr.Results {
			if r.Skip != "" {
				continue
			}
			if r.Records == 0 || r.Elapsed <= 0 || r.Lat.Count() == 0 {
				t.Errorf("%s %s: did nothing: %+v", cr.Case, r.Impl, r)
			}
			if cr.Case.Mode() == Durable && cr.Case.Workload != WReopen && cr.Case.Workload != WRandom && r.Syncs == 0 {
				t.Errorf("%s %s: durable but no syncs counted", cr.Case, r.Impl)
			}
		}
	}
	for _, r := range ro {
		if r.Skip == "" && r.Records != 2*r.LogRecords {
			t.Errorf("reopen %s: read %d records in 2 passes of a %d-record log", r.Impl, r.Records, r.LogRecords)
		}
	}
	var buf bytes.Buffer
	WriteSummary(&buf, [][]CaseResult{crs})
	WriteDetail(&buf, crs)
	for _, want := range []string{"| aof |", "raftwal", "n/a", "Reopen"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Every log directory was removed.
	ents, err := os.ReadDir(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
