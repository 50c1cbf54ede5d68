package hashiraft

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aof2/aof2/aof"
)

// entryVersion is the first byte of every encoded entry. A reader meets a
// higher one only in a log a newer hashiraft wrote.
const entryVersion = 1

// Flag bits of an encoded entry: which optional fields follow.
const (
	flagAppendedAt = 1 << iota // AppendedAt is not the zero time
	flagExtensions             // Extensions is not nil
	flagData                   // Data is not nil
)

// An encoded entry (one aof record) is
//
//	version  1 byte (entryVersion)
//	flags    1 byte
//	index    uvarint
//	term     uvarint
//	type     1 byte (raft.LogType)
//	commit   uvarint: the commit index staged when the entry was stored
//	[seconds varint, nanoseconds uvarint]  AppendedAt, if flagAppendedAt
//	[length uvarint, bytes]                Extensions, if flagExtensions
//	data                                   the rest, if flagData
//
// nil and empty Data and Extensions are told apart, and AppendedAt keeps
// the leader's time to the nanosecond (its location is not kept: decoded
// times are in time.Local).

// maxHeader bounds the encoded size of everything but Extensions' and
// Data's bytes.
const maxHeader = 2 + 3*binary.MaxVarintLen64 + 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen64

// encodedSize returns an upper bound of the size of l's encoding.
func encodedSize(l *raft.Log) int {
	return maxHeader + len(l.Extensions) + len(l.Data)
}

// appendEntry appends the encoding of l, with commit as its staged commit
// index, to b.
func appendEntry(b []byte, l *raft.Log, commit uint64) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	if l.Extensions != nil {
		flags |= flagExtensions
	}
	if l.Data != nil {
		flags |= flagData
	}
	b = append(b, entryVersion, flags)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendUvarint(b, commit)
	if flags&flagAppendedAt != 0 {
		b = binary.AppendVarint(b, l.AppendedAt.Unix())
		b = binary.AppendUvarint(b, uint64(l.AppendedAt.Nanosecond()))
	}
	if flags&flagExtensions != 0 {
		b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
		b = append(b, l.Extensions...)
	}
	if flags&flagData != 0 {
		b = append(b, l.Data...)
	}
	return b
}

// decodeEntry decodes b into l and returns the staged commit index it
// carries. l's Data and Extensions alias b (capacity clipped, so appending
// to one never overwrites the other). A malformed entry is an error
// wrapping aof.ErrCorrupt, one from a newer version an error wrapping
// aof.ErrUnsupportedVersion; l is then left as it was.
func decodeEntry(b []byte, l *raft.Log) (commit uint64, err error) {
	bad := func(what string) error {
		return fmt.Errorf("hashiraft: entry of %d bytes: %w: %s", len(b), aof.ErrCorrupt, what)
	}
	if len(b) < 2 {
		return 0, bad("too short")
	}
	if b[0] != entryVersion {
		if b[0] > entryVersion {
			return 0, fmt.Errorf("hashiraft: entry version %d: %w (this code reads %d)", b[0], aof.ErrUnsupportedVersion, entryVersion)
		}
		return 0, bad(fmt.Sprintf("version byte %d", b[0]))
	}
	flags := b[1]
	if flags&^(flagAppendedAt|flagExtensions|flagData) != 0 {
		return 0, bad(fmt.Sprintf("unknown flags %#x", flags))
	}
	p := 2
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return 0, bad(what)
		}
		p += n
		return v, nil
	}
	var out raft.Log
	if out.Index, err = uvarint("index"); err != nil {
		return 0, err
	}
	if out.Term, err = uvarint("term"); err != nil {
		return 0, err
	}
	if p >= len(b) {
		return 0, bad("type")
	}
	out.Type = raft.LogType(b[p])
	p++
	if commit, err = uvarint("commit index"); err != nil {
		return 0, err
	}
	if flags&flagAppendedAt != 0 {
		sec, n := binary.Varint(b[p:])
		if n <= 0 {
			return 0, bad("appended-at seconds")
		}
		p += n
		nsec, err := uvarint("appended-at nanoseconds")
		if err != nil {
			return 0, err
		}
		if nsec >= uint64(time.Second) {
			return 0, bad("appended-at nanoseconds out of range")
		}
		out.AppendedAt = time.Unix(sec, int64(nsec))
	}
	if flags&flagExtensions != 0 {
		n, err := uvarint("extensions length")
		if err != nil {
			return 0, err
		}
		if n > uint64(len(b)-p) {
			return 0, bad("extensions length past the end")
		}
		out.Extensions = b[p : p+int(n) : p+int(n)]
		p += int(n)
	}
	if flags&flagData != 0 {
		out.Data = b[p:len(b):len(b)]
	} else if p != len(b) {
		return 0, bad("bytes after the last field")
	}
	*l = out
	return commit, nil
}
