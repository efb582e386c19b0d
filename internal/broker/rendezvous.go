package broker

import (
	"crypto/sha256"
	"encoding/binary"
)

// Rendezvous returns the agent among ids that key belongs to by rendezvous
// (highest random weight) hashing: the one with the highest hash of agent
// ID and key, ties to the smaller ID. Every agent computes the same answer
// from the same list, and an agent joining or leaving moves only the keys
// it wins or held. Empty when ids is empty.
func Rendezvous(key string, ids []string) string {
	best, bestScore := "", uint64(0)
	for _, id := range ids {
		sum := sha256.Sum256([]byte(id + "\x00" + key))
		score := binary.BigEndian.Uint64(sum[:8])
		if best == "" || score > bestScore || (score == bestScore && id < best) {
			best, bestScore = id, score
		}
	}
	return best
}
