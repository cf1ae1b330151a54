package codec

import (
	"encoding/hex"
	"fmt"
	"strconv"
)

// Stratum method names used by miners, the agent and the pool.
const (
	MethodSubscribe          = "mining.subscribe"
	MethodAuthorize          = "mining.authorize"
	MethodSubmit             = "mining.submit"
	MethodConfigure          = "mining.configure"
	MethodSuggestDifficulty  = "mining.suggest_difficulty"
	MethodSuggestTarget      = "mining.suggest_target"
	MethodExtranonceSub      = "mining.extranonce.subscribe"
	MethodNotify             = "mining.notify"
	MethodSetDifficulty      = "mining.set_difficulty"
	MethodSetVersionMask     = "mining.set_version_mask"
	MethodSetExtranonce      = "mining.set_extranonce"
	MethodReconnect          = "client.reconnect"
	MethodGetCapabilities    = "agent.get_capabilities"
	MethodMultiVersion       = "mining.multi_version"
	CapVersionRolling        = "verrol"
	CapSubmitResponse        = "subres"
	AgentUserAgentPrefix     = "btccom-agent/"
	VersionRollingExtension  = "version-rolling"
	VersionRollingMaskKey    = "version-rolling.mask"
	VersionRollingMinBitsKey = "version-rolling.min-bit-count"
)

var nullID = []byte("null")

func appendID(dst, id []byte) []byte {
	if len(id) == 0 {
		return append(dst, nullID...)
	}
	return append(dst, id...)
}

// AppendResult appends {"id":<id>,"result":<result>,"error":null}\n. The id is
// echoed byte for byte: miners that reuse one id for every submit, or use
// strings, get back exactly what they sent.
func AppendResult(dst, id []byte, result string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":`...)
	dst = append(dst, result...)
	return append(dst, ",\"error\":null}\n"...)
}

// AppendTrue is the common "result":true reply.
func AppendTrue(dst, id []byte) []byte { return AppendResult(dst, id, "true") }

// AppendError appends {"id":<id>,"result":null,"error":[code,"text",null]}\n.
func AppendError(dst, id []byte, code Status, text string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":null,"error":[`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ',')
	dst = AppendJSONString(dst, text)
	return append(dst, ",null]}\n"...)
}

// AppendRequest appends {"id":<id>,"method":"<method>","params":<params>}\n;
// params is raw JSON (an array).
func AppendRequest(dst, id []byte, method, params string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"method":"`...)
	dst = append(dst, method...)
	dst = append(dst, `","params":`...)
	dst = append(dst, params...)
	return append(dst, "}\n"...)
}

// AppendSetDifficulty appends a mining.set_difficulty notification. Whole
// numbers are written without a fraction (some firmware rejects "16384.0").
func AppendSetDifficulty(dst []byte, diff float64) []byte {
	dst = append(dst, `{"id":null,"method":"mining.set_difficulty","params":[`...)
	dst = strconv.AppendFloat(dst, diff, 'f', -1, 64)
	return append(dst, "]}\n"...)
}

// AppendSetVersionMask appends a mining.set_version_mask notification.
func AppendSetVersionMask(dst []byte, mask uint32) []byte {
	dst = append(dst, `{"id":null,"method":"mining.set_version_mask","params":["`...)
	dst = AppendHex32(dst, mask)
	return append(dst, "\"]}\n"...)
}

// AppendReconnect appends a parameterless client.reconnect.
func AppendReconnect(dst []byte) []byte {
	return append(dst, `{"id":null,"method":"client.reconnect","params":[]}`+"\n"...)
}

// AppendSubscribeResult appends the subscribe reply with exactly two pairs in
// result[0] (some firmware requires exactly two) and the given EN1 / EN2 size.
func AppendSubscribeResult(dst, id []byte, en1 string, en2Size int) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":[[["mining.set_difficulty","`...)
	dst = append(dst, en1...)
	dst = append(dst, `"],["mining.notify","`...)
	dst = append(dst, en1...)
	dst = append(dst, `"]],"`...)
	dst = append(dst, en1...)
	dst = append(dst, `",`...)
	dst = strconv.AppendInt(dst, int64(en2Size), 10)
	return append(dst, "],\"error\":null}\n"...)
}

// AppendHex32 appends v as 8 lowercase hex digits.
func AppendHex32(dst []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xF])
	}
	return dst
}

// Hex32 is AppendHex32 as a string.
func Hex32(v uint32) string { return string(AppendHex32(make([]byte, 0, 8), v)) }

// ParseHex32 reads 1 to 8 hex digits as a number (big-endian text order).
func ParseHex32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		h := unhex(c)
		if h < 0 {
			return 0, false
		}
		v = v<<4 | uint32(h)
	}
	return v, true
}

// Submit is a parsed mining.submit. Worker and JobID alias the line.
type Submit struct {
	Worker      []byte
	JobID       []byte
	ExtraNonce2 uint32 // the miner's EN2 as a big-endian number (EN2 sizes up to 4)
	EN2Hex      []byte // the EN2 text as sent (any size), aliases the line
	NTime       uint32
	Nonce       uint32
	VersionBits uint32
	HasVersion  bool // a sixth param was present (even if zero)
}

// SubmitError is a malformed submit; Code is the Stratum error to answer with.
type SubmitError struct {
	Code Status
	Msg  string
}

func (e *SubmitError) Error() string { return e.Msg }

func submitErr(format string, a ...any) error {
	return &SubmitError{Code: StatusIllegalParams, Msg: fmt.Sprintf(format, a...)}
}

// ParseSubmit reads mining.submit params as a miner behind the agent sends
// them: worker, job id, an EN2 of exactly en2Size bytes (at most 4), ntime,
// nonce and optional version bits. en2Size may be up to 8 (plain pools); the
// numeric ExtraNonce2 is filled only for sizes up to 4. It allocates nothing.
func ParseSubmit(r *Request, en2Size int) (Submit, error) {
	var s Submit
	if r.NParams < 5 {
		return s, submitErr("mining.submit needs 5 or 6 params, got %d", r.NParams)
	}
	for i := 0; i < r.NParams && i < 6; i++ {
		p := r.Params[i]
		if p.Kind != KindString || p.escaped {
			return s, submitErr("mining.submit param %d must be a plain string", i+1)
		}
	}
	s.Worker = r.Params[0].Str
	s.JobID = r.Params[1].Str
	if len(s.JobID) == 0 {
		return s, submitErr("empty job id")
	}
	en2 := r.Params[2].Str
	if len(en2) != 2*en2Size || en2Size > 8 || en2Size < 1 {
		return s, submitErr("extranonce2 must be %d hex digits, got %d", 2*en2Size, len(en2))
	}
	for _, c := range en2 {
		if unhex(c) < 0 {
			return s, submitErr("extranonce2 is not hex")
		}
	}
	s.EN2Hex = en2
	var ok bool
	if en2Size <= 4 {
		s.ExtraNonce2, _ = ParseHex32(en2)
	}
	if len(r.Params[3].Str) != 8 {
		return s, submitErr("ntime must be 8 hex digits")
	}
	if s.NTime, ok = ParseHex32(r.Params[3].Str); !ok {
		return s, submitErr("ntime is not hex")
	}
	if len(r.Params[4].Str) != 8 {
		return s, submitErr("nonce must be 8 hex digits")
	}
	if s.Nonce, ok = ParseHex32(r.Params[4].Str); !ok {
		return s, submitErr("nonce is not hex")
	}
	if r.NParams >= 6 {
		if s.VersionBits, ok = ParseHex32(r.Params[5].Str); !ok {
			return s, submitErr("version bits must be 1 to 8 hex digits")
		}
		s.HasVersion = true
	}
	return s, nil
}

// ParseJobID reads the pool's short job id: a decimal 0..255, which the
// binary submit carries as one byte.
func ParseJobID(b []byte) (uint8, bool) {
	if len(b) == 0 || len(b) > 3 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 255 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	return uint8(v), true
}

// IsHex reports whether s is non-empty, even-length lowercase or uppercase hex.
func IsHex(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if unhex(s[i]) < 0 {
			return false
		}
	}
	return true
}

// DecodeHex decodes hex text; it wraps encoding/hex for symmetry with IsHex.
func DecodeHex(s string) ([]byte, error) { return hex.DecodeString(s) }
