package subaccount

import (
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

func TestSplit(t *testing.T) {
	long := strings.Repeat("a", MaxLen)
	for _, tc := range []struct {
		in        string
		sub, full string
		reason    Reason
		code      codec.Status
		msg       string
	}{
		{in: "alice.rig7", sub: "alice", full: "alice.rig7"},
		{in: "alice.rack1.rig7", sub: "alice", full: "alice.rack1.rig7"}, // worker keeps later dots, as the pool does
		{in: "alice.", sub: "alice", full: "alice.__default__"},
		{in: "alice.r ig#7", sub: "alice", full: "alice.rig7"}, // the worker part is filtered like the pool filters it
		{in: "a-b_c:d|e^f/g.w", sub: "a-b_c:d|e^f/g", full: "a-b_c:d|e^f/g.w"},
		{in: "Alice.w", sub: "Alice", full: "Alice.w"},
		{in: long + ".w", sub: long, full: long + ".w"},
		{in: "rig7", reason: NoSubAccount, code: codec.StatusInvalidUsername,
			msg: `worker name "rig7" has no sub-account: use <sub-account>.<worker>`},
		{in: "", reason: NoSubAccount, code: codec.StatusInvalidUsername,
			msg: `worker name "" has no sub-account: use <sub-account>.<worker>`},
		{in: ".rig7", reason: Invalid, code: codec.StatusInvalidUsername,
			msg: `sub-account "" is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
		{in: "al ice.rig7", reason: Invalid, code: codec.StatusInvalidUsername,
			msg: `sub-account "al ice" is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
		{in: "ålice.rig7", reason: Invalid, code: codec.StatusInvalidUsername,
			msg: `sub-account "\u00e5lice" is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
		{in: long + "a.w", reason: Invalid, code: codec.StatusInvalidUsername,
			msg: `sub-account "` + long[:40] + `"... is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
		{in: "bob\n.w", reason: Invalid, code: codec.StatusInvalidUsername,
			msg: `sub-account "bob\n" is invalid: use 1 to 64 letters, digits or - _ : | ^ /`},
	} {
		n, r := Split(tc.in)
		if tc.reason == "" {
			if r != nil {
				t.Errorf("Split(%q) refused: %v", tc.in, r)
				continue
			}
			if n.SubAccount != tc.sub || n.Full() != tc.full {
				t.Errorf("Split(%q) = %q / %q, want %q / %q", tc.in, n.SubAccount, n.Full(), tc.sub, tc.full)
			}
			continue
		}
		if r == nil {
			t.Errorf("Split(%q) = %+v, want refusal %s", tc.in, n, tc.reason)
			continue
		}
		if r.Reason != tc.reason || r.Code != tc.code || r.Error() != tc.msg {
			t.Errorf("Split(%q) refusal = %s %d %q\n want %s %d %q", tc.in, r.Reason, r.Code, r.Msg, tc.reason, tc.code, tc.msg)
		}
		if strings.ContainsAny(r.Msg, "\r\n") {
			t.Errorf("Split(%q): refusal is not one line: %q", tc.in, r.Msg)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ name, err string }{
		{"alice", ""},
		{"cust-07_a:b|c^d/e", ""},
		{strings.Repeat("x", MaxLen), ""},
		{"", "sub-account name is empty"},
		{strings.Repeat("x", MaxLen+1), "is longer than 64 characters"},
		{"alice.bob", `sub-account name "alice.bob" contains a dot`},
		{"al ice", `sub-account name "al ice" has characters the pool drops`},
		{"alice!", `sub-account name "alice!" has characters the pool drops`},
		{"алиса", "has characters the pool drops"},
	} {
		err := Check(tc.name)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Check(%q) = %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Check(%q) = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestAllowList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   []string
		pattern string
		allowed []string
		refused []string
	}{
		{name: "open", allowed: []string{"alice", "anyone"}},
		{name: "names", names: []string{"alice", "bob"}, allowed: []string{"alice", "bob"}, refused: []string{"carol", "Alice", "alic"}},
		{name: "pattern anchored", pattern: "cust[0-9]+", allowed: []string{"cust1", "cust42"}, refused: []string{"xcust1", "cust1x", "cust"}},
		{name: "alternation anchored as a whole", pattern: "a|b", allowed: []string{"a", "b"}, refused: []string{"ab", "xa", "bx"}},
		{name: "either admits", names: []string{"alice"}, pattern: "cust[0-9]+", allowed: []string{"alice", "cust9"}, refused: []string{"bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAllowList(tc.names, tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if a.Open() != (len(tc.names) == 0 && tc.pattern == "") {
				t.Errorf("Open() = %v", a.Open())
			}
			for _, s := range tc.allowed {
				n, r := a.Admit(s + ".rig1")
				if r != nil || n.Full() != s+".rig1" {
					t.Errorf("Admit(%s.rig1) = %+v, %v", s, n, r)
				}
			}
			for _, s := range tc.refused {
				_, r := a.Admit(s + ".rig1")
				want := `sub-account "` + s + `" is not allowed on this agent`
				if r == nil || r.Reason != NotAllowed || r.Code != codec.StatusUnauthorized || r.Msg != want {
					t.Errorf("Admit(%s.rig1) = %+v, want %q", s, r, want)
				}
			}
		})
	}
	// The name rule is checked before the list: a malformed name is
	// "invalid" even when the pattern would match it.
	a, err := NewAllowList(nil, ".*")
	if err != nil {
		t.Fatal(err)
	}
	if _, r := a.Admit("a b.rig"); r == nil || r.Reason != Invalid {
		t.Errorf("Admit(a b.rig) = %+v, want invalid", r)
	}
	if _, r := a.Admit("rig"); r == nil || r.Reason != NoSubAccount {
		t.Errorf("Admit(rig) = %+v, want no_sub_account", r)
	}
	var nilList *AllowList
	if !nilList.Allows("x") || !nilList.Open() {
		t.Error("a nil list must allow every name")
	}
}

func TestNewAllowListErrors(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		pattern string
		err     string
	}{
		{names: []string{"alice", "b.ob"}, err: `allow-list: sub-account name "b.ob" contains a dot`},
		{names: []string{""}, err: "allow-list: sub-account name is empty"},
		{pattern: "cust[0-9", err: "allow_pattern \"cust[0-9\": error parsing regexp: missing closing ]: `[0-9`"},
	} {
		_, err := NewAllowList(tc.names, tc.pattern)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NewAllowList(%q, %q) = %v, want %q", tc.names, tc.pattern, err, tc.err)
		}
	}
}
