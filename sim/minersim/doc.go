// Package minersim is a Stratum V1 miner farm in one process: a load generator
// that holds up to ~20,000 miner connections on a 2-core box, and a real CPU
// miner whose shares meet the announced difficulty.
//
// Each simulated miner behaves like common firmware: optional mining.configure
// (BIP310 version rolling), mining.subscribe, mining.authorize, then shares on
// the newest job. Difficulty is bound to jobs (set_difficulty applies from the
// next notify), replies are matched by id, client.reconnect and dropped
// connections lead to a reconnect.
//
// Two share modes exist. Fast mode sends plausible random shares on a schedule,
// which is what a load test of the agent needs. Hash mode really mines on a
// small shared pool of hashing goroutines, so the pool side can check every
// share end to end.
//
// The simulator must stay cheap next to the system it measures, so it keeps
// no per-miner timers (one heap-based scheduler drives everything) and no
// per-connection goroutines: by default nbio's epoll loops read all sockets;
// cmd/minersim uses the agent's own epoll loop (actors/netio, with no Go
// netpoller or scheduler work per read, the cheapest) and gives it the P it
// holds; a goroutine per connection remains selectable as a cross-check
// (Config.Transport). Summary.SelfCPU shows whether the simulator itself was saturated,
// in which case its latency numbers describe the simulator, not the agent.
package minersim
