package eval

import "github.com/twmb/murmur3"

// Bucket returns the bucket of value for a rollout with this seed and total weight
// (design/EVALUATION.md, "Percentage rollouts"): MurmurHash3 x86 32-bit (seed 0) of
// the UTF-8 bytes of seed+value, scaled to [0, totalWeight). A rollout serves the
// first variant whose cumulative weight is greater than the bucket.
func Bucket(seed, value string, totalWeight uint32) uint32 {
	var buf [128]byte
	b := append(append(buf[:0], seed...), value...)
	return bucketOf(hashBytes(b), totalWeight)
}

// hashBytes is murmur3 x86 32-bit with seed 0; it equals murmur3.StringSum32 of the
// same bytes as a string, without a string concatenation.
func hashBytes(b []byte) uint32 { return murmur3.Sum32(b) }

func bucketOf(hash, totalWeight uint32) uint32 {
	return uint32((uint64(hash) * uint64(totalWeight)) >> 32)
}
