// Package hashiraft is aof2 as the log store and the stable store of
// github.com/hashicorp/raft (its own module, so raft's dependencies never
// reach the library's).
//
// # Wiring
//
//	store, err := hashiraft.Open(dir, hashiraft.Config{})
//	...
//	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
//	...
//	r.Shutdown().Error()
//	store.Close()
//
// One Store is both the raft.LogStore (also raft.MonotonicLogStore and
// raft.CommitTrackingLogStore, for raft.Config.RestoreCommittedLogs) and
// the raft.StableStore. (raft v1.8.0's RestoreCommittedLogs has a defect
// of its own: a node restarted with it forgets the cluster configuration
// entries among the committed entries it replays, and may restart knowing
// no peers; leave it off until raft fixes it.) The log is an aof log in
// dir/log, one record per entry, the entry's index its record's sequence
// number; the stable store is the file dir/STABLE.
//
// # What is durable when
//
// StoreLogs returns once its entries are durable (one sync per batch,
// shared with concurrent callers); DeleteRange once the deletion is
// (crash-safe: after a crash the log is as before or as after, never in
// between); Set and SetUint64 once the stable file was replaced
// atomically (a temporary file synced, renamed, the directory synced).
// Entries whose StoreLogs had not returned may be lost in a crash, as
// raft expects; StageCommitIndex's value is stored with the next StoreLogs.
//
// # Corruption
//
// Recovery is strict: a log with a corrupt entry in it, or a stable file
// that fails its checksum (or is missing while the log holds entries),
// fails Open with an error wrapping aof.ErrCorrupt (or ErrStableMissing)
// that says to wipe the node and let it rejoin: remove it from the
// cluster's configuration (RemoveServer), move its directory aside, start
// it empty and add it back (AddVoter), so that it catches up from the
// leader through a snapshot. A node must not vote or serve with a hole in
// its log or a forgotten term or vote. A torn tail
// (entries whose StoreLogs never returned) is not corruption: recovery
// drops it, as raft allows.
//
// # Tracing across the cluster
//
// Inject puts the caller's W3C trace context into a Log's Extensions
// before raft.ApplyLog; raft replicates Extensions to every follower, and
// every node's StoreLogs appends such an entry under a hashiraft.store_logs
// span that is a child of the caller's span. The aof.flush span that made
// the entry durable links the append, on the leader and on each follower:
// one trace shows the write and every node's durable flush. Extract (or
// ContextWithLog) gives an FSM the span context and the user's own
// extensions.
package hashiraft
