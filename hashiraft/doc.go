// Package hashiraft is aof2 as the log store and stable store of
// github.com/hashicorp/raft.
package hashiraft
