package harness

import (
	"encoding/binary"
	"math/rand/v2"
)

// Payload returns an incompressible payload of n bytes (ChaCha8 stream
// seeded by seq) whose first 8 bytes, when n >= 8, are seq, so a read can
// be checked against what was written.
func Payload(seq uint64, n int) []byte {
	p := make([]byte, n)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], seq)
	rng := rand.NewChaCha8(seed)
	_, _ = rng.Read(p)
	if n >= 8 {
		binary.LittleEndian.PutUint64(p, seq)
	}
	return p
}
