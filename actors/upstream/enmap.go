package upstream

import (
	"strings"

	"github.com/btcagent/btcagent/codec"
)

// sharedEN2 is the pool extranonce2 size below which miners cannot keep the
// agent layout: 4 bytes of session prefix ("0000SSSS") plus the miner's 4.
const sharedEN2 = 8

// enMap is how miners' extranonces map onto a Stratum pool's for one job
// (docs/PROTOCOL.md §4.1, extended to plain Stratum pools in §10).
//
// Shared layout (pool EN2 size N ≥ 8), identical for agent and stratum links
// so that miners move between them without noticing:
//
//	coinb1' = coinb1 ‖ EN1_pool ‖ zeros(N−8)   EN1_miner = "0000SSSS", EN2_miner 4 bytes
//	EN2_pool = zeros(N−8) ‖ 0000SSSS ‖ EN2_miner
//
// Direct layout (stratum-per-miner, N < 8, the miner accepted
// mining.set_extranonce): the miner gets the pool's nonce space itself. Its
// EN2 is the last k = min(4, N) bytes of the pool's; X = EN1_pool ‖
// zeros(N−k); its EN1 is the last (up to 4) bytes of X and coinb1' =
// coinb1 ‖ the rest of X; EN2_pool = zeros(N−k) ‖ EN2_miner. With the usual
// 4-byte pool EN1 and N ≥ 4 the miner keeps a 4-byte EN1 and EN2, so
// plugins see the usual share fields; otherwise the hash-check copy of the
// job is left out.
type enMap struct {
	suffix   string // hex appended to coinb1 for miners
	pad      string // hex zeros at the front of EN2_pool
	withSID  bool   // EN2_pool carries the session id (shared layout)
	minerEN1 string // direct layout: the miner's EN1 ("" = its own 0000SSSS)
	minerEN2 int    // the miner's EN2 size
	noHash   bool   // plugins cannot recompute the hash (N < 4)
}

// sharedMap is the shared layout, or nil if the pool's EN2 is too small.
func sharedMap(en1 string, n int) *enMap {
	if n < sharedEN2 {
		return nil
	}
	pad := strings.Repeat("00", n-sharedEN2)
	return &enMap{suffix: en1 + pad, pad: pad, withSID: true, minerEN2: 4}
}

// directMap is the per-miner layout for small pool EN2 sizes, or nil when
// the pool leaves nothing for the miner's extranonce1 (no EN1, EN2 ≤ 4).
func directMap(en1 string, n int) *enMap {
	k := min(4, n)
	pad := strings.Repeat("00", n-k)
	x := en1 + pad
	if x == "" {
		return nil
	}
	cut := max(len(x)-8, 0)
	return &enMap{suffix: x[:cut], pad: pad, minerEN1: x[cut:], minerEN2: k, noHash: len(x)-cut != 8 || k != 4}
}

// controlMap is the layout of a per-miner control link's jobs, which never
// reach miners (the coordinator only uses them as templates).
func controlMap(en1 string, n int) *enMap {
	if m := sharedMap(en1, n); m != nil {
		return m
	}
	if m := directMap(en1, n); m != nil {
		return m
	}
	return &enMap{suffix: en1, minerEN2: 4, noHash: true}
}

// appendEN2 appends EN2_pool for a share, as hex.
func (m *enMap) appendEN2(dst []byte, sid uint16, en2 uint32) []byte {
	dst = append(dst, m.pad...)
	if m.withSID {
		dst = codec.AppendHex32(dst, uint32(sid))
	}
	if m.minerEN2 >= 4 {
		return codec.AppendHex32(dst, en2)
	}
	h := codec.AppendHex32(nil, en2)
	return append(dst, h[8-2*m.minerEN2:]...)
}
