package hashiraft

import (
	"context"
	"encoding/binary"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"
)

// The trace context in Log.Extensions.
//
// Inject puts the W3C trace context of the caller's span at the start of
// a Log's Extensions, as a compact binary block:
//
//	0xAF 0x2A          magic
//	0x01               version
//	flags              1 byte: the W3C trace flags (bit 0: sampled)
//	trace ID           16 bytes
//	span ID            8 bytes
//	tracestate         uvarint length, then the W3C tracestate string
//
// 29 bytes without a tracestate. Whatever Extensions held before follows
// the block unchanged: Extract returns it as the user's extensions, so an
// application that keeps its own data in Extensions reads it with Extract
// instead of Extensions directly. The one rule this convention imposes:
// an application's own Extensions must not start with the two magic bytes
// 0xAF 0x2A (it would be taken for a trace block).
var traceMagic = [2]byte{0xAF, 0x2A}

const traceVersion = 1

// traceBlockMin is the size of a trace block with an empty tracestate.
const traceBlockMin = len(traceMagic) + 1 + 1 + 16 + 8 + 1

// Inject puts the span context of ctx's span into l.Extensions (replacing a
// trace block Inject put there before, keeping the rest), so that every
// node's StoreLogs traces the entry's append as a child of that span and
// the node's aof.flush span links it. Call it on the Log given to
// raft.ApplyLog. A ctx without a valid span context leaves l unchanged.
func Inject(ctx context.Context, l *raft.Log) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	_, user := Extract(l.Extensions)
	ts := sc.TraceState().String()
	b := make([]byte, 0, traceBlockMin+len(ts)+len(user))
	b = append(b, traceMagic[0], traceMagic[1], traceVersion, byte(sc.TraceFlags()))
	tid, sid := sc.TraceID(), sc.SpanID()
	b = append(b, tid[:]...)
	b = append(b, sid[:]...)
	b = binary.AppendUvarint(b, uint64(len(ts)))
	b = append(b, ts...)
	l.Extensions = append(b, user...)
}

// Extract splits Extensions into the span context Inject put there (marked
// remote) and the user's own extensions after it. Extensions without a
// well-formed trace block give an invalid span context and ext itself.
func Extract(ext []byte) (sc trace.SpanContext, user []byte) {
	if len(ext) < traceBlockMin || ext[0] != traceMagic[0] || ext[1] != traceMagic[1] || ext[2] != traceVersion {
		return trace.SpanContext{}, ext
	}
	var cfg trace.SpanContextConfig
	cfg.TraceFlags = trace.TraceFlags(ext[3])
	p := 4
	copy(cfg.TraceID[:], ext[p:p+16])
	p += 16
	copy(cfg.SpanID[:], ext[p:p+8])
	p += 8
	n, k := binary.Uvarint(ext[p:])
	if k <= 0 || n > uint64(len(ext)-p-k) {
		return trace.SpanContext{}, ext
	}
	p += k
	if n > 0 {
		ts, err := trace.ParseTraceState(string(ext[p : p+int(n)]))
		if err != nil {
			return trace.SpanContext{}, ext
		}
		cfg.TraceState = ts
	}
	p += int(n)
	cfg.Remote = true
	sc = trace.NewSpanContext(cfg)
	if !sc.IsValid() {
		return trace.SpanContext{}, ext
	}
	return sc, ext[p:]
}

// ContextWithLog returns ctx carrying the remote span context Inject put
// into l's Extensions, if any: for an FSM's Apply to trace its work as part
// of the client's trace.
func ContextWithLog(ctx context.Context, l *raft.Log) context.Context {
	sc, _ := Extract(l.Extensions)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}
