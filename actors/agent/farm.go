package agent

import (
	"time"

	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/farmwatch"
)

// farmSnapshotTimeout bounds a sweep's wait for one coordinator's snapshot;
// a coordinator that does not answer only costs that listener's link events.
const farmSnapshotTimeout = 2 * time.Second

// Farm is the known-miners registry (statuses, farm events).
func (a *Agent) Farm() *farmwatch.Watcher { return a.farm }

// farmListeners is the registry's view of the running listeners: it reads
// the stats the actors already publish, never the share path.
func (a *Agent) farmListeners() []farmwatch.Listener {
	ls := a.Listeners()
	out := make([]farmwatch.Listener, 0, len(ls))
	for _, l := range ls {
		out = append(out, farmwatch.Listener{
			Name: l.Cfg.Name, PoolUser: l.Cfg.PoolUser, Stats: l.Stats,
			Links: func() ([]wire.UpstreamState, error) {
				s, err := l.Snapshot(farmSnapshotTimeout)
				if err != nil {
					return nil, err
				}
				return s.Upstreams, nil
			},
		})
	}
	return out
}
