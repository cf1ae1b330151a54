package sv2

import (
	"fmt"
)

// Frame header constants.
const (
	HeaderSize = 6
	// ChannelMsgBit is bit 15 of extension_type: the payload starts with a
	// channel_id. The spec text calls it the "least significant bit"; the
	// mask, its own example and SRI's bytes (00 80 ...) say most significant.
	ChannelMsgBit = 0x8000
	// MaxPayload is the largest msg_length a U24 can carry.
	MaxPayload = 1<<24 - 1
)

// Header is the 6-byte SV2 frame header. ExtensionType includes the
// channel_msg bit as on the wire.
type Header struct {
	ExtensionType uint16
	MsgType       uint8
	Length        uint32 // plaintext payload length (U24)
}

// ChannelMsg reports the channel_msg bit.
func (h Header) ChannelMsg() bool { return h.ExtensionType&ChannelMsgBit != 0 }

// Extension is the extension type without the channel_msg bit (0 = core).
func (h Header) Extension() uint16 { return h.ExtensionType &^ ChannelMsgBit }

// AppendHeader appends the 6 header bytes.
func AppendHeader(dst []byte, h Header) []byte {
	return appendU24(append(appendU16(dst, h.ExtensionType), h.MsgType), h.Length)
}

// ParseHeader reads a header from the first 6 bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("sv2: frame header: need %d bytes, have %d", HeaderSize, len(b))
	}
	return Header{
		ExtensionType: uint16(b[0]) | uint16(b[1])<<8,
		MsgType:       b[2],
		Length:        uint32(b[3]) | uint32(b[4])<<8 | uint32(b[5])<<16,
	}, nil
}

// Frame is one plaintext SV2 frame.
type Frame struct {
	Header
	Payload []byte
}

// ParseFrame splits a complete plaintext frame (header and payload, nothing
// more) as found in test vectors and unencrypted captures.
func ParseFrame(b []byte) (Frame, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Frame{}, err
	}
	if int(h.Length) != len(b)-HeaderSize {
		return Frame{}, fmt.Errorf("sv2: frame %s: msg_length %d but %d payload bytes", MsgName(h.MsgType), h.Length, len(b)-HeaderSize)
	}
	return Frame{Header: h, Payload: b[HeaderSize:]}, nil
}

// Message is a Mining-protocol or common message this package implements.
type Message interface {
	// MsgType is the message's msg_type byte.
	MsgType() uint8
	// AppendPayload appends the encoded payload (no header).
	AppendPayload(dst []byte) []byte
}

// FrameOf builds the frame of m: core extension, channel_msg bit as the
// message type requires.
func FrameOf(m Message) Frame {
	p := m.AppendPayload(nil)
	return Frame{Header: headerFor(m.MsgType(), len(p)), Payload: p}
}

// AppendFrame appends m's header and payload.
func AppendFrame(dst []byte, m Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = m.AppendPayload(dst)
	h := headerFor(m.MsgType(), len(dst)-start-HeaderSize)
	AppendHeader(dst[start:start], h)
	return dst
}

func headerFor(t uint8, n int) Header {
	var ext uint16
	if IsChannelMsg(t) {
		ext = ChannelMsgBit
	}
	return Header{ExtensionType: ext, MsgType: t, Length: uint32(n)}
}

// Unknown is a frame of an extension or message type this package does not
// decode; callers usually log and skip it, as the spec asks for unknown
// extensions.
type Unknown struct {
	Header
	Payload []byte
}

// MsgType implements Message.
func (u *Unknown) MsgType() uint8 { return u.Header.MsgType }

// AppendPayload implements Message.
func (u *Unknown) AppendPayload(dst []byte) []byte { return append(dst, u.Payload...) }

// Decode decodes a frame's payload. Frames of a non-core extension or of an
// unimplemented message type come back as *Unknown without error; a frame
// whose channel_msg bit disagrees with its type is an error (it would be
// routed to the wrong place).
func Decode(f Frame) (Message, error) {
	if f.Extension() != 0 {
		return &Unknown{Header: f.Header, Payload: f.Payload}, nil
	}
	d, ok := decoders[f.Header.MsgType]
	if !ok {
		return &Unknown{Header: f.Header, Payload: f.Payload}, nil
	}
	if f.ChannelMsg() != IsChannelMsg(f.Header.MsgType) {
		return nil, &DecodeError{Msg: MsgName(f.Header.MsgType), Err: fmt.Sprintf("channel_msg bit is %t, want %t", f.ChannelMsg(), !f.ChannelMsg())}
	}
	r := &reader{b: f.Payload, msg: MsgName(f.Header.MsgType)}
	m := d(r)
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}
