package plugintest_test

import (
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/plugins/plugintest"
)

// upper is a test plugin: it upper-cases worker names, rejects nonce 0 and
// routes miners whose hashrate is above Limit to "big".
type upper struct {
	Limit float64 `toml:"limit"`
}

func (*upper) PluginName() string { return "plugintest-upper" }
func (*upper) OnAuthorize(m *msg.MinerAuthorizing) msg.Verdict {
	m.Info.Worker = strings.ToUpper(m.Info.Worker)
	return msg.Continue
}
func (*upper) OnSubmit(m *msg.ShareSubmitted) msg.Verdict {
	if m.Nonce == 0 {
		m.Code = codec.StatusLowDifficulty
		return msg.Reject
	}
	return msg.Continue
}
func (u *upper) OnSelect(m *msg.UpstreamSelecting) msg.Verdict {
	if m.Hashrate > u.Limit {
		m.Route = "big"
	}
	return msg.Continue
}

func init() {
	plugins.Register(plugins.Info{Name: "plugintest-upper", Description: "test", New: func() plugins.Plugin { return new(upper) }})
}

const fixture = `{"plugins":[{"name":"plugintest-upper","limit":10}]}
# comment
{"hook":"job","id":"j","notify":{"prevhash":"` + zeros64 + `","coinb1":"00","coinb2":"00","branches":[],"version":"20000000","nbits":"1d00ffff","ntime":"6b07071c","clean":true}}
{"hook":"authorize","miner":1,"user":"john.rig1"}
{"hook":"submit","miner":1,"job":"j","en2":"00000000","nonce":"00000000"}
{"hook":"submit","miner":1,"job":"j","en2":"00000000","nonce":"00000001"}
{"hook":"select","miner":1,"hashrate":11}
{"hook":"select","miner":2,"hashrate":1}
{"hook":"gone","miner":1}
`

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

func TestRun(t *testing.T) {
	got, err := plugintest.Run(nil, []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	want := `3 job j clean=true
4 authorize m1 "john.rig1": continue worker="RIG1"
5 submit m1 j nonce=00000000: reject 23 "Low difficulty"
6 submit m1 j nonce=00000001: continue
7 select m1: continue route="big"
8 select m2: continue route=""
9 gone m1
`
	if d := plugintest.Diff([]byte(want), got); d != "" {
		t.Fatalf("output differs:\n%s", d)
	}
}

func TestDiff(t *testing.T) {
	if d := plugintest.Diff([]byte("a\nb\n"), []byte("a\nb\n")); d != "" {
		t.Errorf("equal inputs: %q", d)
	}
	if d := plugintest.Diff([]byte("a\nb\n"), []byte("a\nc\nd\n")); d != "-b\n+c\n+d\n" {
		t.Errorf("diff %q", d)
	}
}

// Broken fixtures fail with the line number and the reason.
func TestFixtureErrors(t *testing.T) {
	header := `{"plugins":[{"name":"plugintest-upper"}]}` + "\n"
	for want, data := range map[string]string{
		"line 1: plugins header":                    `{"plugin":[]}`,
		`line 1: plugins[0]: unknown plugin "nope"`: `{"plugins":[{"name":"nope"}]}`,
		`unknown key "limt"`:                        `{"plugins":[{"name":"plugintest-upper","limt":1}]}`,
		`line 2: unknown hook "submitt"`:            header + `{"hook":"submitt"}`,
		`line 2: bad fixture line`:                  header + `{"hook":"submit","nonse":"1"}`,
		`line 2: submit on unknown job "x"`:         header + `{"hook":"submit","job":"x"}`,
		`line 2: gone: unknown miner 3`:             header + `{"hook":"gone","miner":3}`,
		"fixture has no hook calls":                 header,
	} {
		_, err := plugintest.Run(nil, []byte(data))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", data, err, want)
		}
	}
}
