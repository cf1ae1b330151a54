package sv2

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/btcagent/btcagent/codec"
)

// StripBIP141 removes the segwit marker/flag and the coinbase witness from
// a coinbase prefix/suffix pair. The spec says servers send them stripped,
// but SRI's own fixtures keep them, and a txid over the witness
// serialization is the wrong hash. The rule is SRI's translator's: prefix
// bytes 4..5 are the marker when byte 4 is 0x00 and byte 5 is not (a
// non-witness coinbase has its input count, 0x01, there); then the 34
// bytes 01 20 <32-byte reserved value> before the 4-byte locktime are the
// witness. ok reports whether anything was stripped.
func StripBIP141(prefix, suffix []byte) (p, s []byte, ok bool) {
	if len(prefix) < 6 || prefix[4] != 0x00 || prefix[5] == 0x00 {
		return prefix, suffix, false
	}
	n := len(suffix)
	if n < 38 || suffix[n-38] != 0x01 || suffix[n-37] != 0x20 {
		return prefix, suffix, false
	}
	p = append(append(make([]byte, 0, len(prefix)-2), prefix[:4]...), prefix[6:]...)
	s = append(append(make([]byte, 0, n-34), suffix[:n-38]...), suffix[n-4:]...)
	return p, s, true
}

// SV1PrevHash writes a header-order prev_hash the way mining.notify carries
// it: each 4-byte group byte-reversed (docs/SHARES.md "word-swapped").
func SV1PrevHash(h U256) string {
	var w [32]byte
	for i := 0; i < 32; i += 4 {
		w[i], w[i+1], w[i+2], w[i+3] = h[i+3], h[i+2], h[i+1], h[i]
	}
	return hex.EncodeToString(w[:])
}

// Notify builds the SV1 mining.notify fields of an extended job made
// active by prev (prev.JobID need not match: a job sent after the
// SetNewPrevHash carries its own min_ntime). The coinbase is split around
// the extranonce as in agent mode: Coinb1 is the (BIP141-stripped)
// coinbase_tx_prefix alone and the channel's extranonce_prefix goes in
// front of each miner's extranonce1, i.e. it plays the part of the pool's
// EN1 (codec.NewHashJob's coinb1Suffix, Notify.AppendLine's suffix), and
// the miner's EN1 ‖ EN2 must fill exactly the channel's extranonce_size.
// nTime is the job's min_ntime when it has one, else prev's.
func Notify(job *NewExtendedMiningJob, prev *SetNewPrevHash, jobID string, clean bool) (*codec.Notify, error) {
	if job == nil || prev == nil {
		return nil, errors.New("sv2: notify: need a job and a SetNewPrevHash")
	}
	prefix, suffix, _ := StripBIP141(job.CoinbaseTxPrefix, job.CoinbaseTxSuffix)
	ntime := prev.MinNTime
	if job.MinNTime != nil && *job.MinNTime > ntime {
		ntime = *job.MinNTime
	}
	n := &codec.Notify{
		JobID:    jobID,
		PrevHash: SV1PrevHash(prev.PrevHash),
		Coinb1:   hex.EncodeToString(prefix),
		Coinb2:   hex.EncodeToString(suffix),
		Branches: make([]string, len(job.MerklePath)),
		Version:  codec.Hex32(job.Version),
		NBits:    codec.Hex32(prev.NBits),
		NTime:    codec.Hex32(ntime),
		Clean:    clean,
	}
	for i := range job.MerklePath {
		n.Branches[i] = hex.EncodeToString(job.MerklePath[i][:])
	}
	if n.JobID == "" {
		return nil, fmt.Errorf("sv2: notify for job %d: empty SV1 job id", job.JobID)
	}
	return n, nil
}

// ExtendedShare builds the SubmitSharesExtended for a miner's SV1 share:
// the SV2 extranonce is what follows the channel's prefix, i.e. the miner's
// extranonce1 slice ‖ its extranonce2. version is the full header version
// (the caller applies the rolling rule to the miner's bits).
func ExtendedShare(channelID, seq, jobID uint32, minerEN1, en2 []byte, ntime, nonce, version uint32) *SubmitSharesExtended {
	en := make([]byte, 0, len(minerEN1)+len(en2))
	en = append(append(en, minerEN1...), en2...)
	return &SubmitSharesExtended{ChannelID: channelID, SequenceNumber: seq, JobID: jobID,
		Nonce: nonce, NTime: ntime, Version: version, Extranonce: en}
}

// TargetToCodec turns a wire target (little-endian number) into the
// repository's big-endian codec.Target.
func TargetToCodec(t U256) codec.Target {
	var c codec.Target
	for i := range 32 {
		c[i] = t[31-i]
	}
	return c
}

// TargetFromCodec is the inverse of TargetToCodec.
func TargetFromCodec(c codec.Target) U256 {
	var t U256
	for i := range 32 {
		t[i] = c[31-i]
	}
	return t
}

// TargetFromDifficulty is the wire target of an SV1 difficulty (docs/SHARES.md
// step 5).
func TargetFromDifficulty(d float64) U256 {
	return TargetFromCodec(codec.TargetFromDifficulty(d))
}

var diff1 = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

// Difficulty is the SV1 difficulty whose target is t, (0xFFFF·2^208)/t; it
// is what mining.set_difficulty announces for a SetTarget. A zero target
// gives 0 (meaningless, and never sent by a sane pool).
func Difficulty(t U256) float64 {
	c := TargetToCodec(t)
	n := new(big.Int).SetBytes(c[:])
	if n.Sign() == 0 {
		return 0
	}
	f, _ := new(big.Rat).SetFrac(diff1, n).Float64()
	return f
}
