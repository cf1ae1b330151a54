package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is the first byte of every BTCAgent ex-message. JSON lines always
// start with '{' (or whitespace), so one byte tells the two apart.
const Magic = 0x7F

// HeaderLen is magic + command + uint16 length.
const HeaderLen = 4

// MaxFrameLen is the largest length the uint16 field can carry; it includes the header.
const MaxFrameLen = 0xFFFF

// Ex-message commands (docs/PROTOCOL.md §2.3).
const (
	CmdRegisterWorker         byte = 0x01
	CmdSubmitShare            byte = 0x02
	CmdSubmitShareWithTime    byte = 0x03
	CmdUnregisterWorker       byte = 0x04
	CmdMiningSetDiff          byte = 0x05
	CmdSubmitResponse         byte = 0x10
	CmdSubmitShareWithVer     byte = 0x12
	CmdSubmitShareWithTimeVer byte = 0x13
)

// MaxSessionID is the largest session id sserver accepts; 0xFFFF is its
// "invalid" sentinel, so a process can hold 65,535 miners at most.
const MaxSessionID = 0xFFFE

// MaxSetDiffIDs is how many session ids fit one SET_DIFF frame: (65535-7)/2.
const MaxSetDiffIDs = 32764

// Pool-side size limits of REGISTER_WORKER: frames outside them are ignored
// silently by sserver, so the agent must never produce one.
const (
	MinRegisterLen = 8
	MaxRegisterLen = 100
)

// CmdName names a command for logs and errors.
func CmdName(cmd byte) string {
	switch cmd {
	case CmdRegisterWorker:
		return "REGISTER_WORKER"
	case CmdSubmitShare:
		return "SUBMIT_SHARE"
	case CmdSubmitShareWithTime:
		return "SUBMIT_SHARE_WITH_TIME"
	case CmdUnregisterWorker:
		return "UNREGISTER_WORKER"
	case CmdMiningSetDiff:
		return "MINING_SET_DIFF"
	case CmdSubmitResponse:
		return "SUBMIT_RESPONSE"
	case CmdSubmitShareWithVer:
		return "SUBMIT_SHARE_WITH_VER"
	case CmdSubmitShareWithTimeVer:
		return "SUBMIT_SHARE_WITH_TIME_VER"
	}
	return fmt.Sprintf("CMD_0x%02X", cmd)
}

// Frame is one decoded ex-message. Body aliases the buffer it was decoded
// from and is only valid until that buffer is reused.
type Frame struct {
	Cmd  byte
	Body []byte
}

// Len is the frame's length on the wire, header included.
func (f Frame) Len() int { return HeaderLen + len(f.Body) }

// FrameError describes a frame that cannot be decoded. It names the command
// and the length so a log line is enough to find the peer's bug.
type FrameError struct {
	Cmd    byte
	Length int
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("codec: %s frame (length %d): %s", CmdName(e.Cmd), e.Length, e.Reason)
}

// ErrIncomplete means more bytes are needed before anything can be decoded.
var ErrIncomplete = errors.New("codec: incomplete input")

// DecodeFrame reads one ex-message from the start of b. It returns the frame
// and the number of bytes it used, ErrIncomplete when b holds only part of a
// frame, or a *FrameError when the length field is below the header size
// (a stream in that state cannot be resynchronised, so callers close it).
func DecodeFrame(b []byte) (Frame, int, error) {
	if len(b) < HeaderLen {
		return Frame{}, 0, ErrIncomplete
	}
	if b[0] != Magic {
		return Frame{}, 0, &FrameError{Cmd: b[1], Length: len(b), Reason: fmt.Sprintf("bad magic 0x%02X", b[0])}
	}
	n := int(binary.LittleEndian.Uint16(b[2:4]))
	if n < HeaderLen {
		return Frame{}, 0, &FrameError{Cmd: b[1], Length: n, Reason: "length below the 4-byte header"}
	}
	if len(b) < n {
		return Frame{}, 0, ErrIncomplete
	}
	return Frame{Cmd: b[1], Body: b[HeaderLen:n]}, n, nil
}

func appendHeader(dst []byte, cmd byte, length int) []byte {
	return append(dst, Magic, cmd, byte(length), byte(length>>8))
}

func shortErr(f Frame, want string) error {
	return &FrameError{Cmd: f.Cmd, Length: f.Len(), Reason: "body too short or wrong size: want " + want}
}

// ---- REGISTER_WORKER / UNREGISTER_WORKER ----

// RegisterLen is the frame length REGISTER_WORKER would have for these strings.
func RegisterLen(agent, worker string) int { return 6 + len(agent) + 1 + len(worker) + 1 }

// AppendRegisterWorker appends a REGISTER_WORKER frame. The caller keeps the
// frame within MaxRegisterLen (see FitRegister); this function does not cut.
func AppendRegisterWorker(dst []byte, sid uint16, agent, worker string) []byte {
	dst = appendHeader(dst, CmdRegisterWorker, RegisterLen(agent, worker))
	dst = binary.LittleEndian.AppendUint16(dst, sid)
	dst = append(dst, agent...)
	dst = append(dst, 0)
	dst = append(dst, worker...)
	return append(dst, 0)
}

// Register is a decoded REGISTER_WORKER, interpreted the way sserver does.
type Register struct {
	SessionID uint16
	Agent     string
	Worker    string
}

// ErrIgnoredBySserver is wrapped by decode errors for frames that sserver
// drops silently (size outside 8..100, session id above 0xFFFE).
var ErrIgnoredBySserver = errors.New("frame ignored by sserver rules")

// DecodeRegisterWorker applies sserver's rules: 8..100 bytes, session id at most
// 0xFFFE, the body after the id read as up to two NUL-terminated strings with
// the last byte forced to NUL, an empty worker becoming "__default__".
// Character filtering is left to the caller (FilterName).
func DecodeRegisterWorker(f Frame) (Register, error) {
	if f.Len() < MinRegisterLen || f.Len() > MaxRegisterLen {
		return Register{}, fmt.Errorf("%w: %v", ErrIgnoredBySserver, &FrameError{Cmd: f.Cmd, Length: f.Len(), Reason: "size outside 8..100"})
	}
	sid := binary.LittleEndian.Uint16(f.Body[0:2])
	if sid > MaxSessionID {
		return Register{}, fmt.Errorf("%w: session id 0x%04X above 0xFFFE", ErrIgnoredBySserver, sid)
	}
	rest := f.Body[2:]
	// sserver overwrites the last byte with NUL: a missing terminator cuts one char.
	buf := make([]byte, len(rest))
	copy(buf, rest)
	buf[len(buf)-1] = 0
	agent, after := cutNUL(buf)
	worker := ""
	if len(after) > 0 {
		worker, _ = cutNUL(after)
	}
	if worker == "" {
		worker = DefaultWorkerName
	}
	return Register{SessionID: sid, Agent: agent, Worker: worker}, nil
}

func cutNUL(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}

// AppendUnregisterWorker appends the 6-byte UNREGISTER_WORKER frame.
func AppendUnregisterWorker(dst []byte, sid uint16) []byte {
	dst = appendHeader(dst, CmdUnregisterWorker, 6)
	return binary.LittleEndian.AppendUint16(dst, sid)
}

// DecodeUnregisterWorker requires exactly 6 bytes, as sserver does.
func DecodeUnregisterWorker(f Frame) (uint16, error) {
	if len(f.Body) != 2 {
		return 0, shortErr(f, "6 bytes")
	}
	return binary.LittleEndian.Uint16(f.Body), nil
}

// ---- share submission ----

// Share is the content of one binary submit. ExtraNonce2 is the miner's
// 4-byte EN2 read as a big-endian number; Nonce and NTime are the hex values
// read as numbers. HasTime and HasVersion select among the four commands.
type Share struct {
	JobID       uint8
	SessionID   uint16
	ExtraNonce2 uint32
	Nonce       uint32
	NTime       uint32
	VersionBits uint32
	HasTime     bool
	HasVersion  bool
}

// SubmitCmd is the command for the share's optional fields.
func (s *Share) SubmitCmd() byte {
	switch {
	case s.HasTime && s.HasVersion:
		return CmdSubmitShareWithTimeVer
	case s.HasVersion:
		return CmdSubmitShareWithVer
	case s.HasTime:
		return CmdSubmitShareWithTime
	}
	return CmdSubmitShare
}

// SubmitLen is 15, plus 4 for nTime, plus 4 for version bits.
func (s *Share) SubmitLen() int {
	n := 15
	if s.HasTime {
		n += 4
	}
	if s.HasVersion {
		n += 4
	}
	return n
}

// AppendSubmitShare appends the share as 0x02, 0x03, 0x12 or 0x13.
func AppendSubmitShare(dst []byte, s *Share) []byte {
	dst = appendHeader(dst, s.SubmitCmd(), s.SubmitLen())
	dst = append(dst, s.JobID)
	dst = binary.LittleEndian.AppendUint16(dst, s.SessionID)
	dst = binary.LittleEndian.AppendUint32(dst, s.ExtraNonce2)
	dst = binary.LittleEndian.AppendUint32(dst, s.Nonce)
	if s.HasTime {
		dst = binary.LittleEndian.AppendUint32(dst, s.NTime)
	}
	if s.HasVersion {
		dst = binary.LittleEndian.AppendUint32(dst, s.VersionBits)
	}
	return dst
}

// IsSubmitCmd reports whether cmd is one of the four BTC submit commands.
func IsSubmitCmd(cmd byte) bool {
	switch cmd {
	case CmdSubmitShare, CmdSubmitShareWithTime, CmdSubmitShareWithVer, CmdSubmitShareWithTimeVer:
		return true
	}
	return false
}

// DecodeSubmitShare decodes any of the four submit commands. The size must be
// exact for the command, as sserver requires (wrong sizes are dropped there).
func DecodeSubmitShare(f Frame) (Share, error) {
	var s Share
	switch f.Cmd {
	case CmdSubmitShare:
	case CmdSubmitShareWithTime:
		s.HasTime = true
	case CmdSubmitShareWithVer:
		s.HasVersion = true
	case CmdSubmitShareWithTimeVer:
		s.HasTime, s.HasVersion = true, true
	default:
		return s, &FrameError{Cmd: f.Cmd, Length: f.Len(), Reason: "not a submit command"}
	}
	if f.Len() != s.SubmitLen() {
		return Share{}, shortErr(f, fmt.Sprintf("exactly %d bytes", s.SubmitLen()))
	}
	b := f.Body
	s.JobID = b[0]
	s.SessionID = binary.LittleEndian.Uint16(b[1:3])
	s.ExtraNonce2 = binary.LittleEndian.Uint32(b[3:7])
	s.Nonce = binary.LittleEndian.Uint32(b[7:11])
	off := 11
	if s.HasTime {
		s.NTime = binary.LittleEndian.Uint32(b[off : off+4])
		off += 4
	}
	if s.HasVersion {
		s.VersionBits = binary.LittleEndian.Uint32(b[off : off+4])
	}
	return s, nil
}

// ---- MINING_SET_DIFF ----

// AppendSetDiff appends one or more SET_DIFF frames for difficulty 2^exp,
// splitting the id list at MaxSetDiffIDs ids per frame.
func AppendSetDiff(dst []byte, exp uint8, sids []uint16) []byte {
	for len(sids) > 0 {
		n := len(sids)
		if n > MaxSetDiffIDs {
			n = MaxSetDiffIDs
		}
		dst = appendHeader(dst, CmdMiningSetDiff, 7+2*n)
		dst = append(dst, exp)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
		for _, id := range sids[:n] {
			dst = binary.LittleEndian.AppendUint16(dst, id)
		}
		sids = sids[n:]
	}
	return dst
}

// SetDiff is a decoded SET_DIFF frame; IDs aliases the frame body, read it with ID(i).
type SetDiff struct {
	Exp   uint8
	Count int
	ids   []byte
}

// ID returns the i-th session id of the frame.
func (d SetDiff) ID(i int) uint16 { return binary.LittleEndian.Uint16(d.ids[2*i:]) }

// Difficulty is 2^Exp.
func (d SetDiff) Difficulty() uint64 { return 1 << d.Exp }

// DecodeSetDiff checks that the count matches the frame length.
func DecodeSetDiff(f Frame) (SetDiff, error) {
	if len(f.Body) < 3 {
		return SetDiff{}, shortErr(f, "at least 7 bytes")
	}
	count := int(binary.LittleEndian.Uint16(f.Body[1:3]))
	if len(f.Body) != 3+2*count {
		return SetDiff{}, shortErr(f, fmt.Sprintf("%d bytes for %d ids", 7+2*count, count))
	}
	if f.Body[0] > 63 {
		return SetDiff{}, &FrameError{Cmd: f.Cmd, Length: f.Len(), Reason: fmt.Sprintf("exponent %d above 63", f.Body[0])}
	}
	return SetDiff{Exp: f.Body[0], Count: count, ids: f.Body[3:]}, nil
}

// ---- SUBMIT_RESPONSE ----

// AppendSubmitResponse appends the 10-byte verdict frame.
func AppendSubmitResponse(dst []byte, index uint16, status Status) []byte {
	dst = appendHeader(dst, CmdSubmitResponse, 10)
	dst = binary.LittleEndian.AppendUint16(dst, index)
	return binary.LittleEndian.AppendUint32(dst, uint32(status))
}

// DecodeSubmitResponse requires exactly 10 bytes.
func DecodeSubmitResponse(f Frame) (index uint16, status Status, err error) {
	if len(f.Body) != 6 {
		return 0, 0, shortErr(f, "10 bytes")
	}
	return binary.LittleEndian.Uint16(f.Body), Status(int32(binary.LittleEndian.Uint32(f.Body[2:]))), nil
}
