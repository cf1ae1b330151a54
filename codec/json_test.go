package codec

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

func TestScanRequestShapes(t *testing.T) {
	cases := []struct {
		line   string
		id     string
		method string
		n      int
	}{
		{`{"id":1,"method":"mining.subscribe","params":["cgminer/4.10"]}`, `1`, "mining.subscribe", 1},
		{`{"params":["a","b"],"method":"mining.authorize","id":"x1"}`, `"x1"`, "mining.authorize", 2},
		{`{"id":null,"method":"mining.notify","params":[]}`, `null`, "mining.notify", 0},
		{` { "id" : 7 , "method" : "mining.submit" , "params" : [ "w" , "1" , "00000000" , "5f5e0f3c" , "1a2b3c4d" , "00120000" ] } `, `7`, "mining.submit", 6},
		{`{"id":2,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}`, `2`, "mining.configure", 2},
		{`{"id":3,"result":true,"error":null}`, `3`, "", 0},
		{`{"id":4,"method":"x","params":[1,-2.5e3,true,false,null,{"a":[1,{"b":"\u00e9"}]},"\"q\""],"extra":{"k":[]}}`, `4`, "x", 7},
	}
	for _, c := range cases {
		var r Request
		if err := ScanRequest([]byte(c.line), &r); err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if string(r.ID) != c.id || string(r.Method) != c.method || r.NParams != c.n {
			t.Errorf("%s: id %s method %s n %d", c.line, r.ID, r.Method, r.NParams)
		}
	}
}

func TestScanRequestRejectsMalformed(t *testing.T) {
	bad := []string{
		``, `   `, `[1,2]`, `"str"`, `{`, `{"id":1`, `{"id":1,}`, `{"id":01x}`, `{"id":1}{"id":2}`,
		`{"method":5}`, `{"id":1,"params":[1,2}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"id":tru}`,
		`GET / HTTP/1.1`, "\x16\x03\x01\x02\x00", `{"":00}`, `{"id":-01}`, `{"id":1,"params":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`,
	}
	for _, b := range bad {
		var r Request
		if err := ScanRequest([]byte(b), &r); err == nil {
			t.Errorf("accepted %q", b)
		}
	}
}

// The scanner must agree with encoding/json on what is valid.
func TestScanRequestAgreesWithEncodingJSON(t *testing.T) {
	lines := []string{
		`{"id":1,"method":"a","params":["\u0041\n"]}`,
		`{"id":1e5,"method":"a","params":[{"x":{"y":[null]}}]}`,
		`{"id":-0.5,"method":"a"}`,
		`{"id":"a\"b","method":"a","params":[]}`,
	}
	for _, l := range lines {
		var r Request
		err := ScanRequest([]byte(l), &r)
		if json.Valid([]byte(l)) != (err == nil) {
			t.Errorf("%s: scanner err %v, json.Valid %v", l, err, json.Valid([]byte(l)))
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(l), &m)
		if string(m["id"]) != string(r.ID) {
			t.Errorf("%s: id %s vs %s", l, r.ID, m["id"])
		}
	}
	var r Request
	_ = ScanRequest([]byte(lines[0]), &r)
	if s, err := r.Param(0).String(); err != nil || s != "A\n" {
		t.Errorf("escaped string: %q %v", s, err)
	}
}

func TestResponsesEchoIDs(t *testing.T) {
	for _, id := range []string{`1`, `"abc"`, `null`, `18446744073709551615`} {
		line := AppendTrue(nil, []byte(id))
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if string(m["id"]) != id || string(m["result"]) != "true" || string(m["error"]) != "null" {
			t.Errorf("true reply for %s: %s", id, line)
		}
	}
	line := AppendError(nil, nil, StatusIllegalParams, `bad "x"`)
	if string(line) != `{"id":null,"result":null,"error":[27,"bad \"x\"",null]}`+"\n" {
		t.Errorf("error reply: %s", line)
	}
	if got := string(AppendSetDifficulty(nil, 16384)); got != `{"id":null,"method":"mining.set_difficulty","params":[16384]}`+"\n" {
		t.Errorf("set diff: %s", got)
	}
	if got := string(AppendSetDifficulty(nil, 0.001)); !strings.Contains(got, "[0.001]") {
		t.Errorf("fractional set diff: %s", got)
	}
	if got := string(AppendSetVersionMask(nil, 0x1fffe000)); got != `{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`+"\n" {
		t.Errorf("version mask: %s", got)
	}
	sub := AppendSubscribeResult(nil, []byte("1"), "00000001", 4)
	if string(sub) != `{"id":1,"result":[[["mining.set_difficulty","00000001"],["mining.notify","00000001"]],"00000001",4],"error":null}`+"\n" {
		t.Errorf("subscribe: %s", sub)
	}
}

func TestParseSubmit(t *testing.T) {
	var r Request
	line := `{"id":42,"method":"mining.submit","params":["john.a001","5","00000002","5f5e0f3c","1a2b3c4d","00120000"]}`
	if err := ScanRequest([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSubmit(&r, 4)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Worker) != "john.a001" || string(s.JobID) != "5" || s.ExtraNonce2 != 2 || s.NTime != 0x5f5e0f3c || s.Nonce != 0x1a2b3c4d || s.VersionBits != 0x120000 || !s.HasVersion {
		t.Errorf("parsed %+v", s)
	}
	bad := []string{
		`["w","5","0002","5f5e0f3c","1a2b3c4d"]`,     // short en2
		`["w","5","0000000z","5f5e0f3c","1a2b3c4d"]`, // non-hex
		`["w","5","00000002","5f5e0f3","1a2b3c4d"]`,  // short ntime
		`["w","5","00000002","5f5e0f3c",1]`,          // nonce not a string
		`["w","5","00000002","5f5e0f3c"]`,            // too few
		`["w","","00000002","5f5e0f3c","1a2b3c4d"]`,  // empty job
		`["w","5","00000002","5f5e0f3c","1a2b3c4d","xyz"]`,
	}
	for _, p := range bad {
		if err := ScanRequest([]byte(`{"id":1,"method":"mining.submit","params":`+p+`}`), &r); err != nil {
			t.Fatal(err)
		}
		_, err := ParseSubmit(&r, 4)
		se, ok := err.(*SubmitError)
		if !ok || se.Code != StatusIllegalParams {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestParseJobID(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "5": 5, "255": 255, "256": -1, "": -1, "05": -1, "a": -1, "1234": -1, "-1": -1} {
		v, ok := ParseJobID([]byte(in))
		if (want < 0) == ok || (ok && int(v) != want) {
			t.Errorf("ParseJobID(%q) = %d %v", in, v, ok)
		}
	}
}

// The word test must flag every word holding a quote, a backslash or a
// control character, wherever it sits and whatever surrounds it, and no
// other word: a miss would let a string run past its end.
func TestHasStringSpecialMatchesByteTest(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	fillers := []byte{'0', 'f', ' ', 0x7f, 0x80, 0xff, 0x21, 0x5b, 0x5d}
	for _, fill := range fillers {
		for pos := 0; pos < 8; pos++ {
			for v := 0; v < 256; v++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(v)
				want := false
				for _, c := range w {
					want = want || special(c)
				}
				if got := hasStringSpecial(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("word %q: hasStringSpecial = %v, want %v", w[:], got, want)
				}
			}
		}
	}
	// Pairs of arbitrary bytes at two positions (borrows between bytes).
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b += 3 {
			w := [8]byte{'a', byte(a), 'b', 'c', byte(b), 'd', 'e', 'f'}
			want := special(byte(a)) || special(byte(b))
			if got := hasStringSpecial(binary.LittleEndian.Uint64(w[:])); got != want {
				t.Fatalf("word %q: hasStringSpecial = %v, want %v", w[:], got, want)
			}
		}
	}
}

// Strings whose special byte falls at every offset of the eight-byte
// stride end, escape and fail exactly where the byte-wise scanner would.
func TestScanStringAtEveryOffset(t *testing.T) {
	for n := 0; n < 40; n++ {
		body := strings.Repeat("ab01", 10)[:n]
		cases := []struct {
			raw     string
			want    string // decoded
			wantErr bool
		}{
			{`"` + body + `"`, body, false},
			{`"` + body + `\"x"`, body + `"x`, false},
			{`"` + body + `\\"`, body + `\`, false},
			{`"` + body + `\u00e9z"`, body + "\u00e9z", false},
			{`"` + body + "\x01" + `"`, "", true},
			{`"` + body, "", true},
			{`"` + body + "é\"", body + "é", false},
		}
		for _, c := range cases {
			line := `{"id":1,"method":"m","params":[` + c.raw + `,"tail"]}`
			var r Request
			err := ScanRequest([]byte(line), &r)
			if c.wantErr {
				if err == nil {
					t.Errorf("%q: no error", line)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", line, err)
				continue
			}
			got, err := r.Param(0).String()
			if err != nil || got != c.want || string(r.Param(1).Str) != "tail" {
				t.Errorf("%q: param 0 = %q (%v), param 1 = %q", line, got, err, r.Param(1).Str)
			}
		}
	}
}
