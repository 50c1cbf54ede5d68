// Package bench measures hashiraft, aof2 as hashicorp/raft's log store,
// against the log stores raft users run today: github.com/hashicorp/raft-wal
// and github.com/hashicorp/raft-boltdb/v2, each also its node's stable
// store, as the peer ships it.
//
// Two kinds of measurement, both as Go benchmarks (bench_test.go) and as
// cmd/compare, which runs the stores interleaved in one run and prints a
// Markdown table with ratios:
//
//   - Through raft: a 3-node cluster on 127.0.0.1 (raft.NewTCPTransport,
//     one raft.Config for all), callers applying commands in a closed
//     loop; applied commands per second and Apply latency (Cluster).
//   - The store alone: StoreLogs in batches, GetLog sequential and random
//     (StoreLogs, GetLog), and disk use after a long run with snapshots'
//     prefix deletions (DiskUse).
//
// It is its own module, so the peers never enter hashiraft's go.mod.
package bench
