package minersim

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"

	"github.com/btcagent/btcagent/codec"
)

// grinder searches nonces for one 80-byte header. The first 64 bytes of a
// header do not depend on the nonce, so their SHA-256 state (the "midstate")
// is computed once per header and restored for every nonce: two compression
// rounds per nonce instead of three, about 25 % more hashes per core than
// calling codec.HashJob.Hash (which also rebuilds the merkle root each time).
type grinder struct {
	d     hash.Hash
	u     encoding.BinaryUnmarshaler
	mid   []byte
	tail  [16]byte
	first [32]byte
}

func newGrinder() (*grinder, error) {
	d := sha256.New()
	u, ok := d.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("minersim: sha256 state cannot be restored on this platform")
	}
	if _, ok := d.(encoding.BinaryMarshaler); !ok {
		return nil, fmt.Errorf("minersim: sha256 state cannot be saved on this platform")
	}
	return &grinder{d: d, u: u}, nil
}

// setHeader prepares the midstate of hdr; the nonce field is ignored.
func (g *grinder) setHeader(hdr *[80]byte) error {
	g.d.Reset()
	g.d.Write(hdr[:64])
	mid, err := g.d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("minersim: saving sha256 midstate: %w", err)
	}
	g.mid = mid
	copy(g.tail[:12], hdr[64:76])
	return nil
}

// hash is sha256d of the prepared header with nonce, in digest byte order.
func (g *grinder) hash(nonce uint32) [32]byte {
	binary.LittleEndian.PutUint32(g.tail[12:], nonce)
	// Restoring a state produced by MarshalBinary of the same hash cannot fail.
	_ = g.u.UnmarshalBinary(g.mid)
	g.d.Write(g.tail[:])
	g.d.Sum(g.first[:0])
	return sha256.Sum256(g.first[:])
}

// search tries nonces start, start+1, ... (count of them, not wrapping) and
// stops at the first hash that meets t. It returns the nonce, whether one was
// found, and how many hashes it computed.
func (g *grinder) search(start uint32, count uint32, t *codec.Target) (uint32, bool, uint32) {
	for i := uint32(0); i < count; i++ {
		n := start + i
		h := g.hash(n)
		if t.Met(h) {
			return n, true, i + 1
		}
	}
	return 0, false, count
}

// depositBits spreads the low bits of v over the set bits of mask (a software
// PDEP): the k-th lowest set bit of mask gets bit k of v. It enumerates every
// version-rolling combination the mask allows.
func depositBits(v, mask uint32) uint32 {
	var out uint32
	for m := mask; m != 0; m &= m - 1 {
		if v&1 != 0 {
			out |= m & -m
		}
		v >>= 1
	}
	return out
}

// rollCombos is how many distinct bit patterns mask allows.
func rollCombos(mask uint32) uint64 { return uint64(1) << bits.OnesCount32(mask) }
