package poolsim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// Job field values that never change: every job is a version-2 block
// template at a mainnet-like difficulty (nothing a CPU can solve).
const (
	jobVersion = "20000000"
	jobNBits   = "1703a30c"
)

// job is one published mining.notify plus what share validation needs.
// It is immutable after publication except for dups, which is guarded by
// Pool.mu.
type job struct {
	seq      uint64 // publication order, starting at 1
	block    uint64 // seq of the job that started this job's block
	shortID  int    // the decimal job id as a number, -1 if not 0..255 (injected test jobs)
	notify   codec.Notify
	line     []byte // the notify line as fanned out
	clean    []byte // the same line with clean_jobs true, for freshly authorized sessions
	hash     *codec.HashJob
	netTgt   codec.Target // nbits target: a share meeting it solves the block
	ntime    uint32
	version  uint32
	stamp    time.Time
	dups     map[dupKey]struct{}
	idBytes  []byte
	prevHash string
	sv2      *sv2Parts // SV2 form, built on first use (guarded by Pool.mu)
}

// dupKey is sserver's duplicate key: the pool-side extranonce (EN1 plus the
// session-qualified EN2), nonce, nTime and version bits, kept per job.
type dupKey struct {
	en1   uint32
	en2   uint64
	nonce uint32
	ntime uint32
	bits  uint32
}

// jobTemplate is the random part of a job, generated before the time stamp
// so that the stamp is taken as late as possible.
type jobTemplate struct {
	prevHash string
	height   uint32
	coinb2   string
	branches []string
}

// The scriptSig tag that carries the send time: "/ps:" + 16 hex digits + "/".
var (
	stampPrefixHex = hex.EncodeToString([]byte("/ps:"))
	stampSuffixHex = hex.EncodeToString([]byte("/"))
)

const stampHexLen = 2 * 16 // 16 ASCII hex digits, hex-encoded again

// coinbaseTag is the pool's text in the scriptSig after the extranonces,
// long enough to give coinb2 a realistic size.
const coinbaseTag = "/btcagent-poolsim/"

// newTemplate draws the random parts of a job. newBlock picks a fresh
// prevhash and height; otherwise the block's values are kept.
func newTemplate(rng *rand.Rand, prev *jobTemplate, newBlock bool, branches int) *jobTemplate {
	t := &jobTemplate{}
	if prev == nil || newBlock {
		var ph [32]byte
		fillRandom(rng, ph[:])
		t.prevHash = hex.EncodeToString(ph[:])
		if prev == nil {
			t.height = 850_000 + uint32(rng.IntN(50_000))
		} else {
			t.height = prev.height + 1
		}
	} else {
		t.prevHash, t.height = prev.prevHash, prev.height
	}
	t.coinb2 = buildCoinb2(rng)
	t.branches = make([]string, branches)
	var b [32]byte
	for i := range t.branches {
		fillRandom(rng, b[:])
		t.branches[i] = hex.EncodeToString(b[:])
	}
	return t
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
}

// buildCoinb1 is the coinbase up to where the pool's EN1 goes: tx version,
// one null input, the scriptSig length, a BIP34 height push and the time tag.
// The scriptSig length counts what follows in EN1/EN2 and coinb2 as well,
// so the transaction is well-formed once a miner fills in its extranonce.
func buildCoinb1(height uint32, stamp time.Time, en2Size int) string {
	tag := fmt.Sprintf("/ps:%016x/", uint64(stamp.UnixNano()))
	script := 4 + len(tag) + 4 + en2Size + len(coinbaseTag)
	var b []byte
	b = append(b, 0x01, 0x00, 0x00, 0x00) // tx version 1
	b = append(b, 0x01)                   // one input
	b = append(b, make([]byte, 32)...)    // null prevout hash
	b = append(b, 0xff, 0xff, 0xff, 0xff) // prevout index
	b = append(b, byte(script))
	b = append(b, 0x03, byte(height), byte(height>>8), byte(height>>16)) // BIP34 height push
	b = append(b, tag...)
	return hex.EncodeToString(b)
}

// buildCoinb2 is the rest of the coinbase: the pool tag, the input
// sequence, a P2WPKH payout and the segwit witness commitment, locktime.
func buildCoinb2(rng *rand.Rand) string {
	var b []byte
	b = append(b, coinbaseTag...)
	b = append(b, 0xff, 0xff, 0xff, 0xff) // sequence
	b = append(b, 0x02)                   // two outputs
	b = binary.LittleEndian.AppendUint64(b, 312_500_000+uint64(rng.IntN(50_000_000)))
	var h [32]byte
	fillRandom(rng, h[:])
	b = append(b, 0x16, 0x00, 0x14) // P2WPKH: OP_0 PUSH20
	b = append(b, h[:20]...)
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = append(b, 0x26, 0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed) // OP_RETURN witness commitment
	fillRandom(rng, h[:])
	b = append(b, h[:]...)
	b = append(b, 0x00, 0x00, 0x00, 0x00) // locktime
	return hex.EncodeToString(b)
}

// JobTimestamp finds the pool's send-time tag in coinb1 (hex, as sent in
// mining.notify, with or without the agent's EN1 appended) and returns the
// wall-clock time the pool stamped immediately before writing the job.
func JobTimestamp(coinb1Hex string) (time.Time, bool) {
	s := coinb1Hex
	for off := 0; ; {
		i := indexHex(s[off:], stampPrefixHex)
		if i < 0 {
			return time.Time{}, false
		}
		start := off + i + len(stampPrefixHex)
		end := start + stampHexLen
		if end+len(stampSuffixHex) <= len(s) && s[end:end+len(stampSuffixHex)] == stampSuffixHex {
			digits, err := hex.DecodeString(s[start:end])
			if err == nil {
				if ns, err := strconv.ParseUint(string(digits), 16, 64); err == nil {
					return time.Unix(0, int64(ns)), true
				}
			}
		}
		off = start
	}
}

// indexHex finds sub in s at an even offset only: hex text is a byte
// sequence, and a match straddling two bytes would be a false positive.
func indexHex(s, sub string) int {
	for off := 0; ; {
		i := strings.Index(s[off:], sub)
		if i < 0 {
			return -1
		}
		if (off+i)%2 == 0 {
			return off + i
		}
		off += i + 1
	}
}

// compactTarget expands nbits into a share target for the "solved" check.
func compactTarget(nbits uint32) codec.Target {
	var t codec.Target
	exp := int(nbits >> 24)
	mant := nbits & 0x007fffff
	// The target is mant * 256^(exp-3); place the three mantissa bytes so
	// that the last one lands at big-endian byte index 32-(exp-3)-1.
	for k := 0; k < 3; k++ {
		b := byte(mant >> (8 * uint(k)))
		pos := 31 - (exp - 3) - k
		if pos >= 0 && pos < 32 {
			t[pos] = b
		}
	}
	return t
}

// newJob finalises a template into a publishable job stamped at now.
func newJob(seq uint64, shortID uint8, t *jobTemplate, clean bool, now time.Time, en2Size int, full bool) (*job, error) {
	n := codec.Notify{
		JobID:    strconv.Itoa(int(shortID)),
		PrevHash: t.prevHash,
		Coinb1:   buildCoinb1(t.height, now, en2Size),
		Coinb2:   t.coinb2,
		Branches: t.branches,
		Version:  jobVersion,
		NBits:    jobNBits,
		NTime:    codec.Hex32(uint32(now.Unix())),
		Clean:    clean,
	}
	return prepareJob(seq, &n, now, full)
}

// prepareJob builds the derived fields of a job from its notify; the block
// is set when the job is published.
func prepareJob(seq uint64, n *codec.Notify, now time.Time, full bool) (*job, error) {
	j := &job{
		seq:      seq,
		shortID:  -1,
		notify:   *n,
		ntime:    n.NTimeValue(),
		version:  n.VersionValue(),
		stamp:    now,
		dups:     make(map[dupKey]struct{}),
		idBytes:  []byte(n.JobID),
		prevHash: n.PrevHash,
		netTgt:   compactTarget(n.NBitsValue()),
	}
	j.notify.Branches = append([]string(nil), n.Branches...)
	if id, ok := codec.ParseJobID(j.idBytes); ok {
		j.shortID = int(id)
	}
	j.line = j.notify.AppendLine(nil, "", n.Clean)
	j.clean = j.notify.AppendLine(nil, "", true)
	if full {
		h, err := codec.NewHashJob(&j.notify, "")
		if err != nil {
			return nil, fmt.Errorf("poolsim: job %s: %w", n.JobID, err)
		}
		j.hash = h
	}
	return j, nil
}
