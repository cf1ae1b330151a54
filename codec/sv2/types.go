package sv2

import (
	"encoding/binary"
	"fmt"
	"math"
)

// U256 is a 256-bit value in wire order: 32 bytes of a little-endian number
// (hashes keep their internal, non-display byte order).
type U256 [32]byte

// DecodeError says which message and field could not be decoded.
type DecodeError struct {
	Msg   string // message name, e.g. "SetNewPrevHash"
	Field string // field name as in the specification, e.g. "prev_hash"
	Err   string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("sv2: decode %s: %s", e.Msg, e.Err)
	}
	return fmt.Sprintf("sv2: decode %s.%s: %s", e.Msg, e.Field, e.Err)
}

// ---- encoding: append-style, so a frame is built in one buffer ----

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU24(b []byte, v uint32) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16)) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func appendF32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendStr0_255 and the B0_x helpers clip to the type's maximum instead of
// failing: every caller validates lengths where they come from (config,
// miners), and an encoder that cannot fail keeps the send paths simple.
func appendStr0_255(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

func appendB0_32(b []byte, v []byte) []byte {
	if len(v) > 32 {
		v = v[:32]
	}
	return append(append(b, byte(len(v))), v...)
}

func appendB0_64K(b []byte, v []byte) []byte {
	if len(v) > 0xffff {
		v = v[:0xffff]
	}
	return append(appendU16(b, uint16(len(v))), v...)
}

func appendOptU32(b []byte, v *uint32) []byte {
	if v == nil {
		return append(b, 0)
	}
	return appendU32(append(b, 1), *v)
}

func appendSeqU256(b []byte, v []U256) []byte {
	if len(v) > 255 {
		v = v[:255]
	}
	b = append(b, byte(len(v)))
	for i := range v {
		b = append(b, v[i][:]...)
	}
	return b
}

// ---- decoding ----

// reader walks a payload; the first error sticks and later reads return
// zero values, so decoders read every field and check once at the end.
type reader struct {
	b   []byte
	msg string
	err *DecodeError
}

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = &DecodeError{Msg: r.msg, Field: field, Err: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(field, "need %d bytes, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(field, 2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(field, 4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if v := r.take(field, 8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (r *reader) f32(field string) float32 { return math.Float32frombits(r.u32(field)) }

// boolean follows SRI: only bit 0 counts.
func (r *reader) boolean(field string) bool { return r.u8(field)&1 == 1 }

func (r *reader) u256(field string) (v U256) {
	copy(v[:], r.take(field, 32))
	return v
}

func (r *reader) str0_255(field string) string {
	n := int(r.u8(field))
	return string(r.take(field, n))
}

func (r *reader) bytesN(field string, n int) []byte {
	v := r.take(field, n)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...) // the payload buffer may be reused by the caller
}

func (r *reader) b0_32(field string) []byte {
	n := int(r.u8(field))
	if r.err == nil && n > 32 {
		r.fail(field, "length %d exceeds 32", n)
		return nil
	}
	return r.bytesN(field, n)
}

func (r *reader) b0_64K(field string) []byte {
	return r.bytesN(field, int(r.u16(field)))
}

func (r *reader) optU32(field string) *uint32 {
	switch n := r.u8(field); {
	case r.err != nil:
		return nil
	case n == 0:
		return nil
	case n == 1:
		v := r.u32(field)
		return &v
	default:
		r.fail(field, "OPTION count %d, want 0 or 1", n)
		return nil
	}
}

func (r *reader) seqU256(field string) []U256 {
	n := int(r.u8(field))
	out := make([]U256, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.u256(fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

func (r *reader) seqU32_64K(field string) []uint32 {
	n := int(r.u16(field))
	out := make([]uint32, 0, min(n, len(r.b)/4))
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.u32(fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

// done reports the sticky error, or trailing bytes: a decoder that does not
// consume the payload exactly has the wrong layout.
func (r *reader) done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return &DecodeError{Msg: r.msg, Err: fmt.Sprintf("%d trailing bytes", len(r.b))}
	}
	return nil
}
