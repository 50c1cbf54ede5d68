package bench

import "math/rand/v2"

// Payload returns size incompressible bytes (ChaCha8 from seed), so no
// store gains from compression.
func Payload(size int, seed uint64) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	p := make([]byte, size)
	rand.NewChaCha8(s).Read(p)
	return p
}
