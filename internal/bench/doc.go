// Package bench is the end-to-end benchmark harness behind cmd/agentbench.
//
// It measures btcagent the way an operator experiences it: the agent runs as
// its own process (built from ./cmd/btcagent, configured through a TOML file
// like any installation), the miners run as a second process (cmd/minersim;
// the per-process open-files limit would not let one process hold both ends
// of 19,000 connections), and the pool simulator runs inside the harness so
// that the kernel's TCP_INFO counters of the pool link can be read directly.
//
// Everything the harness judges the agent on comes from outside it:
// /proc/<pid>/stat and /proc/<pid>/status for CPU and memory, the pool's
// sockets for bytes and segments, and the miners' own view for job fan-out
// latency and shares sent. The one thing asked of the agent itself, its own
// record of recent broadcasts (HTTP API), is reported alongside and left
// empty for agents without it, so any agent binary that reads the same
// config can be measured, and btccom's C++ agent, given its own JSON config
// (Options.AgentKind), under the same workload: that is what a same-run
// comparison (Comparison) rests on.
//
// MeasureFloor gives the machine's own cost of a broadcast, the floor the
// fan-out figures are set against.
//
// All traffic stays on 127.0.0.1, every wait is bounded, and every child
// process is stopped before Run returns.
package bench
