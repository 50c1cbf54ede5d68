package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
)

func dumpCommand() command {
	return command{
		name:    "dump",
		args:    "DIR [--from SEQ] [--limit N] [--format text|hex|json]",
		summary: "print records from a sequence number, as text, hex or JSON lines",
		detail: `Prints records in sequence order from --from (default: the first retained record), at most
--limit of them (default: all). Every record's checksum is verified before it is printed.

Formats:
  text  one line per record: seq, append time (RFC 3339, UTC), payload length, and the
        payload as a quoted string if it is printable UTF-8, else "hex:" and its first bytes
        (--width bytes at most; 0 for all)
  hex   a "# seq ..." line per record, then a hexdump -C style dump of the payload
  json  one JSON object per line: {"seq":1,"ts":"...","ts_ns":...,"len":5,"file":"...",
        "offset":64,"payload":"aGVsbG8="} (payload in base64, as encoding/json writes []byte)

Records are read as written to the segment files, including those not yet proven durable
(see aof inspect). A torn tail ends the dump with a warning; corruption exits 1. If the
writer removes records while they are dumped (retention, TruncateBack), the dump stops with
exit 4 and names the --from to continue with.`,
		flags: func(fs *flag.FlagSet) func(*env, []string) int {
			o := outputFlags(fs)
			from := fs.Uint64("from", 0, "first sequence number to print (default: the first retained record)")
			limit := fs.Uint64("limit", 0, "print at most `N` records (0: all)")
			return func(e *env, args []string) int { return e.dump(args[0], *from, *limit, o) }
		},
	}
}

// output is how records are printed (dump and tail).
type output struct {
	format *string
	width  *int
}

func outputFlags(fs *flag.FlagSet) output {
	return output{
		format: fs.String("format", "text", "output `format`: text, hex or json"),
		width:  fs.Int("width", 96, "text format: show at most `N` payload bytes (0: all)"),
	}
}

// printer writes records in one format.
type printer struct {
	w      *bufio.Writer
	format string
	width  int
	enc    *json.Encoder
}

func (e *env) newPrinter(cmd string, o output) (*printer, bool) {
	switch *o.format {
	case "text", "hex", "json":
	default:
		e.errorf(cmd, "unknown --format %q; use text, hex or json", *o.format)
		return nil, false
	}
	if *o.width < 0 {
		e.errorf(cmd, "--width %d is negative; give a byte count, or 0 for whole payloads", *o.width)
		return nil, false
	}
	p := &printer{w: bufio.NewWriterSize(e.stdout, 64<<10), format: *o.format, width: *o.width}
	p.enc = json.NewEncoder(p.w)
	return p, true
}

// jsonRecord is the json format of one record.
type jsonRecord struct {
	Seq     uint64 `json:"seq"`
	TS      string `json:"ts"`
	TSNanos int64  `json:"ts_ns"`
	Len     int    `json:"len"`
	File    string `json:"file"`
	Offset  int64  `json:"offset"`
	Payload []byte `json:"payload"`
}

func timestamp(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// print prints the record r of the segment file named file.
func (p *printer) print(r reader.Record, file string) error {
	switch p.format {
	case "json":
		return p.enc.Encode(jsonRecord{Seq: r.Seq, TS: timestamp(r.Timestamp), TSNanos: r.Timestamp,
			Len: len(r.Payload), File: file, Offset: r.Offset, Payload: r.Payload})
	case "hex":
		fmt.Fprintf(p.w, "# seq %d  ts %s  len %d  %s offset %d\n", r.Seq, timestamp(r.Timestamp), len(r.Payload), file, r.Offset)
		d := hex.Dumper(p.w)
		d.Write(r.Payload)
		d.Close()
		_, err := fmt.Fprintln(p.w)
		return err
	default:
		_, err := fmt.Fprintf(p.w, "%d %s %d %s\n", r.Seq, timestamp(r.Timestamp), len(r.Payload), showPayload(r.Payload, p.width))
		return err
	}
}

// showPayload renders a payload for the text format: quoted if printable,
// otherwise "hex:" and its first bytes; at most width bytes (0: all).
func showPayload(b []byte, width int) string {
	var s string
	var shown []byte
	if printable(b) {
		shown = b
		if width > 0 && len(b) > width {
			shown = b[:width]
			for len(shown) > width-utf8.UTFMax && !utf8.Valid(shown) {
				shown = shown[:len(shown)-1] // do not cut a rune in two
			}
		}
		s = strconv.Quote(string(shown))
	} else {
		shown = b
		if width > 0 && len(b) > width/2 {
			shown = b[:width/2] // two hex digits per byte
		}
		s = "hex:" + hex.EncodeToString(shown)
	}
	if more := len(b) - len(shown); more > 0 {
		s += fmt.Sprintf("...(+%d bytes)", more)
	}
	return s
}

// printable reports whether b is UTF-8 text without control characters
// other than tab, newline and carriage return.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// openRecords is how dump and tail start: a printer for o, the log at
// path, and the sequence numbers it holds now, [first, next). code is
// exitOK, or the exit status after the error was reported.
func (e *env) openRecords(cmd, path string, o output) (p *printer, first, next uint64, code int) {
	p, ok := e.newPrinter(cmd, o)
	if !ok {
		return nil, 0, 0, exitUsage
	}
	d, code := e.openDir(cmd, path)
	if d == nil {
		return nil, 0, 0, code
	}
	first, next, err := d.Span()
	if err != nil {
		e.errorf(cmd, "find the last record: %v\n  run `aof verify %s` for a full report", err, d.Path)
		if errors.Is(err, segment.ErrCorrupt) {
			return nil, 0, 0, exitCorrupt
		}
		if errors.Is(err, segment.ErrUnsupportedVersion) {
			e.errorf(cmd, "%s", newerHint)
			return nil, 0, 0, exitNewer
		}
		return nil, 0, 0, exitError
	}
	return p, first, next, exitOK
}

func (e *env) dump(path string, from, limit uint64, o output) int {
	p, first, next, code := e.openRecords("dump", path, o)
	if code != exitOK {
		return code
	}
	switch {
	case from == 0:
		from = first
	case from < first:
		e.errorf("dump", "seq %d is before the first retained record %d; use --from %d (or leave --from out to start at the first record)", from, first, first)
		return exitUsage
	case from >= next && next > first:
		e.errorf("dump", "seq %d is past the last record %d; use --from between %d and %d, or `aof tail -f %s` to wait for new records", from, next-1, first, next-1, path)
		return exitUsage
	}
	if next == first {
		e.errorf("dump", "the log holds no records yet")
		return exitOK
	}
	r, code := e.openReader("dump", path, from)
	if r == nil {
		return code
	}
	defer r.Close()
	var n uint64
	for (limit == 0 || n < limit) && r.Next() {
		if err := p.print(r.Record()); err != nil {
			return e.writeErr("dump", err)
		}
		n++
	}
	if err := p.w.Flush(); err != nil {
		return e.writeErr("dump", err)
	}
	if limit != 0 && n == limit {
		return exitOK
	}
	return e.readErr("dump", path, r.Err())
}

// writeErr reports a failed write to stdout (a closed pipe ends quietly).
func (e *env) writeErr(cmd string, err error) int {
	if isBrokenPipe(err) {
		return exitOK
	}
	e.errorf(cmd, "writing the output: %v", err)
	return exitError
}

func isBrokenPipe(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.EPIPE)
}
