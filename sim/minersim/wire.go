package minersim

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/btcagent/btcagent/codec"
)

// Small JSON helpers for the client side of Stratum. The hot paths (share
// lines, reply ids, reject codes) avoid allocations; the rare handshake
// replies go through encoding/json because their shapes vary between peers.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Worker names and job ids are
// plain ASCII in practice, so the common case is a straight copy.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return append(dst, `""`...)
			}
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendHexBytes appends b as lowercase hex.
func appendHexBytes(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// submitParams is one mining.submit as this miner writes it.
type submitParams struct {
	id       uint64
	worker   string
	job      string
	en2      []byte
	ntime    uint32
	nonce    uint32
	bits     uint32
	withBits bool
}

// appendSubmit appends the whole mining.submit line including its LF.
func appendSubmit(dst []byte, p *submitParams) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, p.id, 10)
	dst = append(dst, `,"method":"mining.submit","params":[`...)
	dst = appendJSONString(dst, p.worker)
	dst = append(dst, ',')
	dst = appendJSONString(dst, p.job)
	dst = append(dst, `,"`...)
	dst = appendHexBytes(dst, p.en2)
	dst = append(dst, `","`...)
	dst = codec.AppendHex32(dst, p.ntime)
	dst = append(dst, `","`...)
	dst = codec.AppendHex32(dst, p.nonce)
	if p.withBits {
		dst = append(dst, `","`...)
		dst = codec.AppendHex32(dst, p.bits)
	}
	return append(dst, "\"]}\n"...)
}

// appendCall appends a request whose params are already JSON.
func appendCall(dst []byte, id uint64, method, params string) []byte {
	var idb [20]byte
	return codec.AppendRequest(dst, strconv.AppendUint(idb[:0], id, 10), method, params)
}

// jsonArray renders strings as a JSON array for handshake params.
func jsonArray(items ...string) string {
	var b []byte
	b = append(b, '[')
	for i, s := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return string(append(b, ']'))
}

// parseUintID reads a numeric reply id; string and null ids return false.
func parseUintID(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// errorCode reads the code of a Stratum error value: [code, "text", data].
// Some peers send an object {"code":..} or a bare number; -1 means unreadable.
func errorCode(v codec.Value) int {
	switch v.Kind {
	case codec.KindNumber:
		if n, err := strconv.Atoi(string(v.Raw)); err == nil {
			return n
		}
	case codec.KindArray:
		b := v.Raw[1:]
		i := 0
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		j := i
		if j < len(b) && b[j] == '-' {
			j++
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if n, err := strconv.Atoi(string(b[i:j])); err == nil {
			return n
		}
	case codec.KindObject:
		var e struct {
			Code *int `json:"code"`
		}
		if json.Unmarshal(v.Raw, &e) == nil && e.Code != nil {
			return *e.Code
		}
	}
	return -1
}

// isTrue reports whether a value is the JSON literal true.
func isTrue(v codec.Value) bool { return v.Kind == codec.KindBool && v.Raw[0] == 't' }

// maxEN2Size bounds the extranonce2 size a miner accepts; real firmware
// refuses anything above 100 bytes and nothing real uses more than 8.
const maxEN2Size = 32

// parseExtranonce validates an extranonce1 / extranonce2_size pair.
func parseExtranonce(en1Hex string, en2Size int) ([]byte, error) {
	if en1Hex == "" {
		return nil, fmt.Errorf("empty extranonce1")
	}
	en1, err := hex.DecodeString(en1Hex)
	if err != nil {
		return nil, fmt.Errorf("extranonce1 %q: %w", en1Hex, err)
	}
	if en2Size < 1 || en2Size > maxEN2Size {
		return nil, fmt.Errorf("extranonce2 size %d outside 1..%d", en2Size, maxEN2Size)
	}
	return en1, nil
}

// parseSubscribeResult reads [[subscriptions...], extranonce1, en2_size].
func parseSubscribeResult(raw []byte) (en1 []byte, en2Size int, err error) {
	var res []json.RawMessage
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, 0, fmt.Errorf("subscribe result: %w", err)
	}
	if len(res) < 3 {
		return nil, 0, fmt.Errorf("subscribe result has %d elements, want 3", len(res))
	}
	var en1Hex string
	if err := json.Unmarshal(res[1], &en1Hex); err != nil {
		return nil, 0, fmt.Errorf("subscribe extranonce1: %w", err)
	}
	if err := json.Unmarshal(res[2], &en2Size); err != nil {
		return nil, 0, fmt.Errorf("subscribe extranonce2 size: %w", err)
	}
	en1, err = parseExtranonce(en1Hex, en2Size)
	if err != nil {
		return nil, 0, fmt.Errorf("subscribe: %w", err)
	}
	return en1, en2Size, nil
}

// parseConfigureResult reads the version-rolling part of a configure reply:
// {"version-rolling":true,"version-rolling.mask":"1fffe000"}.
func parseConfigureResult(raw []byte) (granted bool, mask uint32, err error) {
	var res map[string]json.RawMessage
	if err := json.Unmarshal(raw, &res); err != nil {
		return false, 0, fmt.Errorf("configure result: %w", err)
	}
	var on bool
	if v, ok := res[codec.VersionRollingExtension]; ok {
		if err := json.Unmarshal(v, &on); err != nil {
			return false, 0, fmt.Errorf("configure version-rolling: %w", err)
		}
	}
	if !on {
		return false, 0, nil
	}
	var maskHex string
	if err := json.Unmarshal(res[codec.VersionRollingMaskKey], &maskHex); err != nil {
		return false, 0, fmt.Errorf("configure version-rolling.mask: %w", err)
	}
	m, ok := codec.ParseHex32([]byte(maskHex))
	if !ok {
		return false, 0, fmt.Errorf("configure version-rolling.mask %q is not hex", maskHex)
	}
	return true, m, nil
}

// numberParam reads a number that some pools send as a string.
func numberParam(v codec.Value) (float64, error) {
	switch v.Kind {
	case codec.KindNumber:
		return strconv.ParseFloat(string(v.Raw), 64)
	case codec.KindString:
		s, err := v.String()
		if err != nil {
			return 0, err
		}
		return strconv.ParseFloat(strings.TrimSpace(s), 64)
	}
	return 0, fmt.Errorf("expected a number, got %s", v.Kind)
}

// hex32Param reads an 8-digit hex string param such as a version mask.
func hex32Param(v codec.Value) (uint32, error) {
	if v.Kind != codec.KindString {
		return 0, fmt.Errorf("expected a hex string, got %s", v.Kind)
	}
	n, ok := codec.ParseHex32(v.Str)
	if !ok {
		return 0, fmt.Errorf("%q is not hex", v.Str)
	}
	return n, nil
}
