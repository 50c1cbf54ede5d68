package hashiraft

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aof2/aof2/aof"
)

// raft.Log's field set, as the codec encodes it: a raft upgrade that adds,
// removes or retypes a field fails this test, so the codec is updated
// before an entry silently loses a field.
func TestLogFieldSetIsPinned(t *testing.T) {
	want := []struct {
		name string
		typ  reflect.Type
	}{
		{"Index", reflect.TypeFor[uint64]()},
		{"Term", reflect.TypeFor[uint64]()},
		{"Type", reflect.TypeFor[raft.LogType]()},
		{"Data", reflect.TypeFor[[]byte]()},
		{"Extensions", reflect.TypeFor[[]byte]()},
		{"AppendedAt", reflect.TypeFor[time.Time]()},
	}
	typ := reflect.TypeFor[raft.Log]()
	if typ.NumField() != len(want) {
		t.Fatalf("raft.Log has %d fields, the codec encodes %d: update codec.go", typ.NumField(), len(want))
	}
	for i, w := range want {
		f := typ.Field(i)
		if f.Name != w.name || f.Type != w.typ {
			t.Fatalf("raft.Log field %d is %s %s, the codec encodes %s %s: update codec.go", i, f.Name, f.Type, w.name, w.typ)
		}
	}
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		reflect.DeepEqual(a.Data, b.Data) && reflect.DeepEqual(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

// Every field, zero and nil values, nil told from empty, large indexes.
func TestCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 21, 0, 0, 123456789, time.UTC)
	cases := []struct {
		name   string
		log    raft.Log
		commit uint64
	}{
		{"zero", raft.Log{}, 0},
		{"every field", raft.Log{Index: 7, Term: 3, Type: raft.LogCommand, Data: []byte("data"), Extensions: []byte("ext"), AppendedAt: at}, 6},
		{"empty not nil", raft.Log{Index: 1, Term: 1, Data: []byte{}, Extensions: []byte{}}, 0},
		{"nil data, extensions", raft.Log{Index: 2, Term: 1, Extensions: []byte{1, 2}}, 1},
		{"large index", raft.Log{Index: 1 << 40, Term: 1<<40 + 1, Type: raft.LogConfiguration, Data: []byte{0}}, 1<<40 - 1},
		{"max values", raft.Log{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogType(255), Data: make([]byte, 1<<16)}, ^uint64(0)},
		{"time before 1970", raft.Log{Index: 3, AppendedAt: time.Date(1900, 1, 2, 3, 4, 5, 6, time.UTC)}, 0},
		{"time far ahead", raft.Log{Index: 3, AppendedAt: time.Date(3000, 1, 2, 3, 4, 5, 999999999, time.UTC)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := appendEntry(nil, &c.log, c.commit)
			if len(b) > encodedSize(&c.log) {
				t.Fatalf("encoded %d bytes, bound %d", len(b), encodedSize(&c.log))
			}
			var got raft.Log
			commit, err := decodeEntry(b, &got)
			if err != nil {
				t.Fatal(err)
			}
			if !sameLog(&got, &c.log) || commit != c.commit {
				t.Fatalf("round trip: got %+v commit %d, want %+v commit %d", got, commit, c.log, c.commit)
			}
			// Appending to Extensions never overwrites Data.
			if got.Extensions != nil {
				_ = append(got.Extensions, 0xEE)
				if !reflect.DeepEqual(got.Data, c.log.Data) {
					t.Fatal("appending to Extensions changed Data")
				}
			}
		})
	}
}

func TestCodecSize(t *testing.T) {
	l := raft.Log{Index: 1 << 20, Term: 5, Type: raft.LogCommand, Data: make([]byte, 256), AppendedAt: time.Now()}
	b := appendEntry(nil, &l, 1<<20-1)
	// version, flags, index 3, term 1, type, commit 3, time 5+4, data.
	if over := len(b) - len(l.Data); over > 2+3+1+1+3+5+5 {
		t.Fatalf("%d bytes of overhead", over)
	}
}

// A malformed entry is an error wrapping aof.ErrCorrupt, a newer version
// aof.ErrUnsupportedVersion; the destination is left alone.
func TestCodecRejectsMalformed(t *testing.T) {
	l := raft.Log{Index: 300, Term: 2, Extensions: []byte("xy"), AppendedAt: time.Unix(5, 5)}
	good := appendEntry(nil, &l, 9)
	keep := raft.Log{Index: 42}
	for n := 0; n < len(good); n++ {
		got := keep
		if _, err := decodeEntry(good[:n], &got); !errors.Is(err, aof.ErrCorrupt) {
			t.Fatalf("prefix of %d bytes: err %v, want ErrCorrupt", n, err)
		}
		if got.Index != 42 {
			t.Fatal("a failed decode changed the destination")
		}
	}
	newer := append([]byte{entryVersion + 1}, good[1:]...)
	if _, err := decodeEntry(newer, &keep); !errors.Is(err, aof.ErrUnsupportedVersion) {
		t.Fatalf("newer version: %v", err)
	}
	flags := append([]byte(nil), good...)
	flags[1] |= 0x80
	if _, err := decodeEntry(flags, &keep); !errors.Is(err, aof.ErrCorrupt) {
		t.Fatalf("unknown flag: %v", err)
	}
	trailing := append(appendEntry(nil, &raft.Log{Index: 1}, 0), 0)
	if _, err := decodeEntry(trailing, &keep); !errors.Is(err, aof.ErrCorrupt) {
		t.Fatalf("bytes after the last field: %v", err)
	}
}
