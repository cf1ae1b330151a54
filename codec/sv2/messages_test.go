package sv2

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// vectorDir is the repository's copy of the SV2 vectors (testdata/sv2/README.md).
var vectorDir = filepath.Join("..", "..", "testdata", "sv2")

type msgVector struct {
	Name     string         `json:"name"`
	Origin   string         `json:"origin"` // source, third_party or derived
	Kind     string         `json:"kind"`   // payload, frame or header
	Hex      string         `json:"hex"`
	FrameHex string         `json:"frame_hex"`
	Header   *vectorHeader  `json:"header"`
	Decoded  map[string]any `json:"decoded"`
}

type vectorHeader struct {
	ExtensionType uint16 `json:"extension_type"`
	ChannelMsg    bool   `json:"channel_msg"`
	MsgType       uint8  `json:"msg_type"`
	MsgLength     uint32 `json:"msg_length"`
}

func loadMessages(t *testing.T) []msgVector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "messages.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Entries []msgVector `json:"entries"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 26 {
		t.Fatalf("messages.json has %d entries, want 26", len(f.Entries))
	}
	return f.Entries
}

func typeByName(t *testing.T, name string) uint8 {
	t.Helper()
	if i := strings.Index(name, " ("); i >= 0 {
		name = name[:i]
	}
	for ty, n := range msgNames {
		if n == name {
			return ty
		}
	}
	t.Fatalf("no message type named %q", name)
	return 0
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// TestMessageVectors decodes every entry of messages.json, compares every
// field with the entry's decoded values and re-encodes it byte for byte.
// Entries of origin "derived" only restate the layouts (see the file's
// _about); "source" and "third_party" bytes come from other implementations.
func TestMessageVectors(t *testing.T) {
	for i, v := range loadMessages(t) {
		t.Run(fmt.Sprintf("%02d_%s_%s", i, v.Origin, strings.ReplaceAll(v.Name, " ", "_")), func(t *testing.T) {
			raw := unhex(t, v.Hex)
			if v.Kind == "header" {
				h, err := ParseHeader(raw)
				if err != nil {
					t.Fatal(err)
				}
				want := Header{ExtensionType: v.Header.ExtensionType, MsgType: v.Header.MsgType, Length: v.Header.MsgLength}
				if h != want || h.ChannelMsg() != v.Header.ChannelMsg {
					t.Fatalf("header %+v, want %+v (channel_msg %t)", h, want, v.Header.ChannelMsg)
				}
				if got := AppendHeader(nil, h); !bytes.Equal(got, raw) {
					t.Fatalf("re-encoded header %x, want %x", got, raw)
				}
				return
			}
			frameBytes := raw
			if v.Kind == "payload" {
				frameBytes = unhex(t, v.FrameHex)
				if v.FrameHex == "" {
					// Payload-only third-party entries: the header is ours.
					ty := typeByName(t, v.Name)
					frameBytes = append(AppendHeader(nil, headerFor(ty, len(raw))), raw...)
				}
			}
			f, err := ParseFrame(frameBytes)
			if err != nil {
				t.Fatal(err)
			}
			if want := typeByName(t, v.Name); f.Header.MsgType != want {
				t.Fatalf("msg_type 0x%02x, want 0x%02x", f.Header.MsgType, want)
			}
			if v.Header != nil && (f.Header.ExtensionType != v.Header.ExtensionType || f.Length != v.Header.MsgLength) {
				t.Fatalf("header %+v, want %+v", f.Header, *v.Header)
			}
			m, err := Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, unknown := m.(*Unknown); unknown {
				t.Fatalf("%s decoded as Unknown", v.Name)
			}
			compareFields(t, m, v.Decoded)
			if got := AppendFrame(nil, m); !bytes.Equal(got, frameBytes) {
				t.Fatalf("re-encoded\n got %x\nwant %x", got, frameBytes)
			}
		})
	}
}

// compareFields checks each expected JSON value against the struct field
// with the same name in CamelCase (user_identity → UserIdentity).
func compareFields(t *testing.T, m Message, want map[string]any) {
	t.Helper()
	rv := reflect.ValueOf(m).Elem()
	for name, w := range want {
		fv := rv.FieldByName(camel(name))
		if !fv.IsValid() {
			t.Errorf("%T has no field for %q", m, name)
			continue
		}
		if got := jsonish(fv); !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", name, got, w)
		}
	}
	// The reverse: a field the vector does not mention must not carry data
	// the encoder would emit (the old OpenExtendedMiningChannel.Success layout).
	if s, ok := m.(*OpenExtendedMiningChannelSuccess); ok {
		_, has := want["group_channel_id"]
		if s.HasGroupChannelID != has {
			t.Errorf("HasGroupChannelID = %t, vector has group_channel_id: %t", s.HasGroupChannelID, has)
		}
	}
}

func camel(s string) string {
	var b strings.Builder
	for _, p := range strings.Split(s, "_") {
		switch p {
		case "id":
			b.WriteString("ID")
		case "tx":
			b.WriteString("Tx")
		case "ntime":
			b.WriteString("NTime")
		case "nbits":
			b.WriteString("NBits")
		default:
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// jsonish converts a field to what encoding/json produced for the vector.
func jsonish(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case U256:
		return hex.EncodeToString(x[:])
	case []byte:
		return hex.EncodeToString(x)
	case []U256:
		out := make([]any, len(x))
		for i := range x {
			out[i] = hex.EncodeToString(x[i][:])
		}
		return out
	case *uint32:
		if x == nil {
			return nil
		}
		return float64(*x)
	case string, bool:
		return x
	case float32:
		return float64(x)
	}
	switch v.Kind() {
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint())
	}
	return v.Interface()
}

// Decode errors name the message and the field; trailing bytes and a wrong
// channel_msg bit are errors too.
func TestDecodeErrors(t *testing.T) {
	job := AppendFrame(nil, &SetNewPrevHash{ChannelID: 1, JobID: 2, MinNTime: 3, NBits: 4})
	short, _ := ParseHeader(job)
	short.Length = 20
	cases := []struct {
		name string
		f    Frame
		want string
	}{
		{"truncated", Frame{Header: short, Payload: job[HeaderSize : HeaderSize+20]}, "sv2: decode SetNewPrevHash.prev_hash: need 32 bytes, 12 left"},
		{"trailing", Frame{Header: Header{ExtensionType: 0, MsgType: TypeReconnect}, Payload: []byte{0, 1, 0, 9}}, "sv2: decode Reconnect: 1 trailing bytes"},
		{"bit", Frame{Header: Header{ExtensionType: 0, MsgType: TypeSetTarget}, Payload: make([]byte, 36)}, "sv2: decode SetTarget: channel_msg bit is false, want true"},
		{"b0_32", Frame{Header: Header{ExtensionType: ChannelMsgBit, MsgType: TypeSetExtranoncePrefix}, Payload: append(make([]byte, 4), 33)}, "sv2: decode SetExtranoncePrefix.extranonce_prefix: length 33 exceeds 32"},
		{"option", Frame{Header: Header{ExtensionType: ChannelMsgBit, MsgType: TypeNewMiningJob}, Payload: append(make([]byte, 8), 2)}, "sv2: decode NewMiningJob.min_ntime: OPTION count 2, want 0 or 1"},
		{"merkle", Frame{Header: Header{ExtensionType: ChannelMsgBit, MsgType: TypeNewExtendedMiningJob}, Payload: append(make([]byte, 14), 1, 2, 3)}, "sv2: decode NewExtendedMiningJob.merkle_path[0]: need 32 bytes, 2 left"},
	}
	for _, c := range cases {
		_, err := Decode(c.f)
		var de *DecodeError
		if err == nil || !errors.As(err, &de) || err.Error() != c.want {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
	// Unknown types and extensions pass through for the caller to skip.
	m, err := Decode(Frame{Header: Header{ExtensionType: 0x0002, MsgType: 0x01}, Payload: []byte{7}})
	if u, ok := m.(*Unknown); err != nil || !ok || u.Extension() != 2 {
		t.Errorf("extension frame: %T %v", m, err)
	}
}

// Every message type round-trips with non-zero fields, the old and new
// OpenExtendedMiningChannel.Success layouts included.
func TestRoundTripAll(t *testing.T) {
	nt := uint32(77)
	var u U256
	for i := range u {
		u[i] = byte(i + 1)
	}
	msgs := []Message{
		&SetupConnection{Protocol: 0, MinVersion: 2, MaxVersion: 2, Flags: 4, EndpointHost: "pool", EndpointPort: 34254, Vendor: "v", HardwareVersion: "h", Firmware: "f", DeviceID: "d"},
		&SetupConnectionSuccess{UsedVersion: 2, Flags: 2}, &SetupConnectionError{Flags: 1, ErrorCode: "x"},
		&ChannelEndpointChanged{ChannelID: 9}, &Reconnect{NewHost: "h", NewPort: 1},
		&OpenStandardMiningChannel{RequestID: 1, UserIdentity: "u.w", NominalHashRate: 1e14, MaxTarget: u},
		&OpenStandardMiningChannelSuccess{RequestID: 1, ChannelID: 2, Target: u, ExtranoncePrefix: []byte{1, 2}, GroupChannelID: 3},
		&OpenExtendedMiningChannel{RequestID: 1, UserIdentity: "u", NominalHashRate: 2.5, MaxTarget: u, MinExtranonceSize: 8},
		&OpenExtendedMiningChannelSuccess{RequestID: 1, ChannelID: 2, Target: u, ExtranonceSize: 8, ExtranoncePrefix: []byte{5}, GroupChannelID: 7, HasGroupChannelID: true},
		&OpenExtendedMiningChannelSuccess{RequestID: 1, ChannelID: 2, Target: u, ExtranonceSize: 8, ExtranoncePrefix: []byte{5}},
		&OpenMiningChannelError{RequestID: 4, ErrorCode: "unknown-user"},
		&NewMiningJob{ChannelID: 1, JobID: 2, MinNTime: &nt, Version: 3, MerkleRoot: u},
		&NewMiningJob{ChannelID: 1, JobID: 2, Version: 3, MerkleRoot: u},
		&UpdateChannel{ChannelID: 1, NominalHashRate: 3, MaximumTarget: u}, &UpdateChannelError{ChannelID: 1, ErrorCode: "e"},
		&CloseChannel{ChannelID: 1, ReasonCode: "r"}, &SetExtranoncePrefix{ChannelID: 1, ExtranoncePrefix: []byte{1, 2, 3}},
		&SubmitSharesStandard{ChannelID: 1, SequenceNumber: 2, JobID: 3, Nonce: 4, NTime: 5, Version: 6},
		&SubmitSharesExtended{ChannelID: 1, SequenceNumber: 2, JobID: 3, Nonce: 4, NTime: 5, Version: 6, Extranonce: []byte{7, 8}},
		&SubmitSharesSuccess{ChannelID: 1, LastSequenceNumber: 2, NewSubmitsAcceptedCount: 3, NewSharesSum: 1 << 40},
		&SubmitSharesError{ChannelID: 1, SequenceNumber: 2, ErrorCode: ErrStaleShare},
		&NewExtendedMiningJob{ChannelID: 1, JobID: 2, MinNTime: &nt, Version: 0x20000000, VersionRollingAllowed: true, MerklePath: []U256{u, u}, CoinbaseTxPrefix: []byte{1}, CoinbaseTxSuffix: []byte{2, 3}},
		&SetNewPrevHash{ChannelID: 1, JobID: 2, PrevHash: u, MinNTime: 3, NBits: 4},
		&SetTarget{ChannelID: 1, MaximumTarget: u}, &SetGroupChannel{GroupChannelID: 1, ChannelIDs: []uint32{2, 3}},
	}
	for _, m := range msgs {
		b := AppendFrame(nil, m)
		f, err := ParseFrame(b)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if f.ChannelMsg() != IsChannelMsg(m.MsgType()) {
			t.Errorf("%T: channel bit %t", m, f.ChannelMsg())
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
		if ff := FrameOf(m); !bytes.Equal(AppendHeader(nil, ff.Header), b[:HeaderSize]) || !bytes.Equal(ff.Payload, b[HeaderSize:]) {
			t.Errorf("%T: FrameOf differs from AppendFrame", m)
		}
	}
}
