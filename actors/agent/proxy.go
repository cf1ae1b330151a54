package agent

import (
	"fmt"
	"os"
	"slices"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/proxydial"
	"github.com/sirupsen/logrus"
)

// withProxies gives every pool of routes its upstream proxy plan: the
// listener's own pools (routes[0]) their [[listen.pool]] settings, pools
// that plugins add the [upstream] defaults. "system" entries read the
// environment now, once per (re)start of the listener.
func withProxies(routes []msg.Route, lc config.Listener, u config.UpstreamOptions, log logrus.FieldLogger) error {
	warned := false
	for i := range routes {
		pools := slices.Clone(routes[i].Pools) // plugin routes may share their slices
		for j := range pools {
			var pc *config.Pool
			if i == 0 && j < len(lc.Pools) {
				pc = &lc.Pools[j]
			}
			ps := u.ProxyFor(pc)
			if !warned && slices.Contains(ps.Proxies, proxydial.System) && proxydial.FromEnv(os.Getenv) == "" {
				warned = true
				log.WithField("listener", lc.Name).
					Warn(`proxy "system": none of ALL_PROXY, HTTPS_PROXY, HTTP_PROXY is set; that entry is skipped`)
			}
			plan, err := proxydial.NewPlan(ps.Proxies, ps.RaceDirect, ps.FallbackDirect, os.Getenv)
			if err != nil {
				return fmt.Errorf("pool %s:%d: %w", pools[j].Host, pools[j].Port, err)
			}
			if plan == nil {
				pools[j].Proxy = nil
				continue
			}
			plan.Log = log.WithField("listener", lc.Name)
			pools[j].Proxy = plan
			log.WithFields(logrus.Fields{"listener": lc.Name, "route": routes[i].Name, "pool": fmt.Sprintf("%s:%d", pools[j].Host, pools[j].Port), "proxies": plan.String()}).
				Info("pool is reached through proxies")
		}
		routes[i].Pools = pools
	}
	return nil
}
