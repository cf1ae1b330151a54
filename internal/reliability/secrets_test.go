package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// Miner passwords and the HTTP token never appear in the log during a
// normal session with a link loss and failover — at info level, and at
// debug level too. (Pools get no password from the agent: it authorizes
// with the pool user, an account name that the logs do show.)
func TestSecretsNotLogged(t *testing.T) {
	for _, level := range []logrus.Level{logrus.InfoLevel, logrus.DebugLevel} {
		t.Run(level.String(), func(t *testing.T) {
			ctx := ctxFor(t, 60*time.Second)
			first := testenv.Pool(t, poolsim.Config{})
			second := testenv.Pool(t, poolsim.Config{})
			cfg := baseConfig(t, first.Addr(), second.Addr())
			const token = "http-token-5ec2e7"
			cfg.HTTPToken = token
			log, logs := newLogger(t, level)
			a, err := agent.New(cfg, log, agent.Options{TickInterval: 100 * time.Millisecond, Socket: testenv.Socket})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Stop)
			sim := farm(t, testenv.Addr(a), 3)
			moreAccepted(t, ctx, sim, 6, "in a normal session")
			m := testenv.Dial(t, testenv.Addr(a))
			m.Send(`{"id":1,"method":"mining.subscribe","params":[]}`)
			m.Send(`{"id":2,"method":"mining.authorize","params":["john.raw","` + minerPassword + `"]}`)
			m.Until(10*time.Second, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
			first.SetRefuse(true)
			first.DropAll()
			poolAccepts(t, ctx, second, 6, "after the failover")
			a.Stop()
			if len(logs.Entries()) == 0 {
				t.Fatal("nothing was logged")
			}
			for _, e := range logs.Entries() {
				for _, secret := range []string{minerPassword, token} {
					if strings.Contains(e.Text, secret) {
						t.Errorf("secret %q logged: %s", secret, e.Text)
					}
				}
			}
		})
	}
}
