package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/hashiraft"
)

// command is one replicated write: the Data of a raft entry.
type command struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// kvFSM is the replicated state machine: a map of keys to values.
type kvFSM struct {
	tracer trace.Tracer

	mu      sync.RWMutex
	data    map[string]string
	applied uint64 // the index of the last entry applied
}

func newFSM(tracer trace.Tracer) *kvFSM {
	return &kvFSM{tracer: tracer, data: map[string]string{}}
}

// Apply applies one committed entry, on every node. The entry's
// Extensions carry the trace context of the PUT that wrote it
// (hashiraft.Inject), so each node's apply is a span of that PUT's trace.
func (f *kvFSM) Apply(l *raft.Log) any {
	_, span := f.tracer.Start(hashiraft.ContextWithLog(context.Background(), l), "raftkv.apply",
		trace.WithAttributes(attribute.Int64("raft.index", int64(l.Index))))
	defer span.End()
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		// A committed entry this program cannot read: every node fails
		// the same way, so the state machines still agree.
		span.RecordError(err)
		return fmt.Errorf("raftkv: entry %d: %w", l.Index, err)
	}
	f.mu.Lock()
	f.data[c.Key] = c.Value
	f.applied = l.Index
	f.mu.Unlock()
	return nil
}

// get returns key's value and the index of the last entry applied.
func (f *kvFSM) get(key string) (string, bool, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok, f.applied
}

// snapshotState is what a snapshot holds.
type snapshotState struct {
	Applied uint64            `json:"applied"`
	Data    map[string]string `json:"data"`
}

// Snapshot copies the map; raft persists the copy (Persist) while Apply
// goes on.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &kvSnapshot{snapshotState{Applied: f.applied, Data: maps.Clone(f.data)}}, nil
}

// Restore replaces the map with a snapshot's (a restart, or a snapshot
// the leader sent to a follower that fell behind the compacted log).
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s snapshotState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("raftkv: restore: %w", err)
	}
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	f.mu.Lock()
	f.data, f.applied = s.Data, s.Applied
	f.mu.Unlock()
	return nil
}

type kvSnapshot struct{ s snapshotState }

func (k *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(k.s); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftkv: snapshot: %w", err)
	}
	return sink.Close()
}

func (*kvSnapshot) Release() {}
