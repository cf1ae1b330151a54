package codec

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
)

// DoubleSHA256 is Bitcoin's sha256d.
func DoubleSHA256(b []byte) [32]byte {
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

// HashJob is a job prepared for share validation: every hex field decoded
// once, the prevhash already in header byte order. Build it once per job and
// share it (read-only) between all miners.
type HashJob struct {
	PrevHash [32]byte // swap4(prevhash) as it appears in the header
	Coinb1   []byte
	Coinb2   []byte
	Branches [][32]byte
	Version  uint32
	NBits    uint32
	NTime    uint32
	// Network is the block target nBits encodes: a share whose hash meets
	// it is a block candidate.
	Network Target
}

// NewHashJob decodes a notify. coinb1Suffix is extra hex appended to coinb1
// (the agent's upstream extranonce1), so miner-side checks see the coinbase
// the miner hashes.
func NewHashJob(n *Notify, coinb1Suffix string) (*HashJob, error) {
	j := &HashJob{Version: n.VersionValue(), NBits: n.NBitsValue(), NTime: n.NTimeValue()}
	j.Network = TargetFromBits(j.NBits)
	ph, err := hex.DecodeString(n.PrevHash)
	if err != nil || len(ph) != 32 {
		return nil, fmt.Errorf("codec: prevhash: not 32 bytes of hex")
	}
	for i := 0; i < 32; i += 4 {
		j.PrevHash[i], j.PrevHash[i+1], j.PrevHash[i+2], j.PrevHash[i+3] = ph[i+3], ph[i+2], ph[i+1], ph[i]
	}
	if j.Coinb1, err = hex.DecodeString(n.Coinb1 + coinb1Suffix); err != nil {
		return nil, fmt.Errorf("codec: coinb1: %w", err)
	}
	if j.Coinb2, err = hex.DecodeString(n.Coinb2); err != nil {
		return nil, fmt.Errorf("codec: coinb2: %w", err)
	}
	j.Branches = make([][32]byte, len(n.Branches))
	for i, b := range n.Branches {
		if _, err := hex.Decode(j.Branches[i][:], []byte(b)); err != nil {
			return nil, fmt.Errorf("codec: merkle branch %d: %w", i, err)
		}
	}
	return j, nil
}

// MerkleRoot hashes the coinbase, then folds in each branch with the running
// value on the left; the result stays in digest byte order.
func (j *HashJob) MerkleRoot(en1, en2 []byte) [32]byte {
	var stack [1024]byte
	cb := stack[:0]
	cb = append(cb, j.Coinb1...)
	cb = append(cb, en1...)
	cb = append(cb, en2...)
	cb = append(cb, j.Coinb2...)
	root := DoubleSHA256(cb)
	var pair [64]byte
	for i := range j.Branches {
		copy(pair[:32], root[:])
		copy(pair[32:], j.Branches[i][:])
		root = DoubleSHA256(pair[:])
	}
	return root
}

// Header builds the 80-byte block header; version is the final header version
// (the caller applies the version-rolling rule).
func (j *HashJob) Header(en1, en2 []byte, version, ntime, nonce uint32) [80]byte {
	var h [80]byte
	binary.LittleEndian.PutUint32(h[0:], version)
	copy(h[4:36], j.PrevHash[:])
	root := j.MerkleRoot(en1, en2)
	copy(h[36:68], root[:])
	binary.LittleEndian.PutUint32(h[68:], ntime)
	binary.LittleEndian.PutUint32(h[72:], j.NBits)
	binary.LittleEndian.PutUint32(h[76:], nonce)
	return h
}

// Hash is sha256d of the header, in digest byte order.
func (j *HashJob) Hash(en1, en2 []byte, version, ntime, nonce uint32) [32]byte {
	h := j.Header(en1, en2, version, ntime, nonce)
	return DoubleSHA256(h[:])
}

// RolledVersion applies btcpool's rule: the header version is the job version
// XOR the miner's bits. ok is false when a bit lies outside the mask (the pool
// rejects such shares with status 33).
func RolledVersion(jobVersion, bits, mask uint32) (version uint32, ok bool) {
	if bits&^mask != 0 {
		return 0, false
	}
	return jobVersion ^ bits, true
}

// Target is a share target as a 256-bit big-endian number.
type Target [32]byte

var diff1 = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

// TargetFromDifficulty is floor((0xFFFF << 208) / d). Fractional difficulties
// (CPU test miners) are supported; d <= 0 yields the easiest target.
func TargetFromDifficulty(d float64) Target {
	var t Target
	if !(d > 0) {
		for i := range t {
			t[i] = 0xFF
		}
		return t
	}
	// Go through the shortest decimal form so that 0.001 means exactly 1/1000,
	// as the operator wrote it, not the nearest binary fraction.
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(d, 'g', -1, 64))
	if !ok {
		return t
	}
	n := new(big.Int).Mul(diff1, r.Denom())
	n.Quo(n, r.Num())
	if n.BitLen() > 256 {
		for i := range t {
			t[i] = 0xFF
		}
		return t
	}
	n.FillBytes(t[:])
	return t
}

// TargetFromBits expands a compact nBits value: mantissa × 256^(exponent−3).
// A negative or overflowing encoding yields the zero target (met by no hash
// but zero), so a malformed job can never make every share a "block".
func TargetFromBits(bits uint32) Target {
	var t Target
	exp := int(bits >> 24)
	mant := bits & 0x007fffff
	if bits&0x00800000 != 0 || mant == 0 {
		return t
	}
	// The mantissa's three bytes end at byte index 32-(exp-3)-1 of the
	// big-endian number.
	for i := 0; i < 3; i++ {
		b := byte(mant >> (8 * (2 - i)))
		pos := 32 - exp + i
		if pos < 0 {
			if b != 0 {
				return Target{} // overflow
			}
			continue
		}
		if pos < 32 {
			t[pos] = b
		}
	}
	return t
}

// Met reports whether a hash (digest byte order, i.e. a little-endian number)
// is at or below the target.
func (t *Target) Met(hash [32]byte) bool {
	for i := 0; i < 32; i++ {
		hb := hash[31-i]
		if hb != t[i] {
			return hb < t[i]
		}
	}
	return true
}

// HashDifficulty is the difficulty a hash would satisfy exactly, for statistics.
func HashDifficulty(hash [32]byte) float64 {
	var be [32]byte
	for i := 0; i < 32; i++ {
		be[i] = hash[31-i]
	}
	h := new(big.Int).SetBytes(be[:])
	if h.Sign() == 0 {
		return 0
	}
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(diff1), new(big.Float).SetInt(h)).Float64()
	return f
}

// DisplayHex is the usual display form of a hash (byte-reversed hex).
func DisplayHex(hash [32]byte) string {
	var be [32]byte
	for i := 0; i < 32; i++ {
		be[i] = hash[31-i]
	}
	return hex.EncodeToString(be[:])
}
