package codec

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzScanRequest checks that the scanner never panics, accepts only what
// encoding/json accepts as an object, and that responses built from any id it
// returns are themselves valid JSON.
func FuzzScanRequest(f *testing.F) {
	seeds := []string{
		`{"id":1,"method":"mining.subscribe","params":["cgminer"]}`,
		`{"id":"x","method":"mining.submit","params":["w","5","00000002","5f5e0f3c","1a2b3c4d","00120000"]}`,
		`{"id":2,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000"}]}`,
		exampleNotify, `{"id":3,"result":true,"error":null}`, `GET / HTTP/1.1`, `{"a":"\u00e9"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Request
		err := ScanRequest(line, &r)
		if err != nil {
			return
		}
		if !json.Valid(line) {
			t.Fatalf("scanner accepted invalid JSON %q", line)
		}
		if !json.Valid(AppendTrue(nil, r.ID)) {
			t.Fatalf("reply with id %q is invalid", r.ID)
		}
		if bytes.Equal(r.Method, []byte(MethodSubmit)) {
			_, _ = ParseSubmit(&r, 4)
		}
		if bytes.Equal(r.Method, []byte(MethodNotify)) {
			if n, err := ParseNotify(&r); err == nil {
				_, _ = NewHashJob(n, "")
			}
		}
	})
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoders: no panics, and
// every frame that decodes re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	seeds := []string{
		"7f 01 19 00 01 00 62 6d 6d 69 6e 65 72 2f 32 2e 31 2e 30 00 61 30 30 31 00",
		"7f 04 06 00 01 00", "7f 02 0f 00 05 01 00 02 00 00 00 4d 3c 2b 1a",
		"7f 13 17 00 a9 22 11 44 33 22 11 dd cc bb aa d0 2a bd 57 00 00 12 00",
		"7f 05 0d 00 0e 03 00 01 00 02 00 00 01", "7f 10 0a 00 07 00 87 96 2c 6b", "7f 02 03 00",
	}
	for _, s := range seeds {
		f.Add(unhexSpaced(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Splitter{Frames: true, MaxLine: 1024}
		_ = s.Feed(b, func(c Chunk) error {
			if !c.IsFrame {
				return nil
			}
			fr := c.Frame
			wire := append([]byte{Magic, fr.Cmd, byte(fr.Len()), byte(fr.Len() >> 8)}, fr.Body...)
			switch {
			case IsSubmitCmd(fr.Cmd):
				if sh, err := DecodeSubmitShare(fr); err == nil {
					if !bytes.Equal(AppendSubmitShare(nil, &sh), wire) {
						t.Fatalf("submit re-encode differs: % x", wire)
					}
				}
			case fr.Cmd == CmdMiningSetDiff:
				if d, err := DecodeSetDiff(fr); err == nil {
					ids := make([]uint16, d.Count)
					for i := range ids {
						ids[i] = d.ID(i)
					}
					if !bytes.Equal(AppendSetDiff(nil, d.Exp, ids), wire) {
						t.Fatalf("set diff re-encode differs")
					}
				}
			case fr.Cmd == CmdSubmitResponse:
				if idx, st, err := DecodeSubmitResponse(fr); err == nil && !bytes.Equal(AppendSubmitResponse(nil, idx, st), wire) {
					t.Fatalf("response re-encode differs")
				}
			case fr.Cmd == CmdRegisterWorker:
				_, _ = DecodeRegisterWorker(fr)
			case fr.Cmd == CmdUnregisterWorker:
				_, _ = DecodeUnregisterWorker(fr)
			}
			return nil
		})
	})
}
