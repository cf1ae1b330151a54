// Package poolsim is an in-process stand-in for a btcpool sserver, built for
// testing and benchmarking btcagent.
//
// It speaks plain Stratum V1 to ordinary miners and the BTCAgent protocol
// (JSON handshake plus 0x7F binary ex-messages, docs/PROTOCOL.md) to
// connections whose mining.subscribe user agent starts with "btccom-agent/".
// Shares are validated the way sserver does it: job window, stale blocks,
// nTime bounds, version-rolling mask, duplicates, and either a real sha256d
// check against the worker's per-job difficulty ("full") or everything but
// the hash ("structural", for cheap high-rate benchmarks).
//
// With Config.SV2Listen set, a second listener speaks Stratum V2: the Noise
// handshake with a configurable authority key, extended channels (a 4-byte
// extranonce prefix per channel) and standard channels for per-miner mode
// (user_identity is the worker name), the same jobs, vardiff (SetTarget)
// and share checks, answered with SubmitShares.Success/.Error (sv2.go).
//
// Everything a test wants to assert on is counted and exposed through
// Pool.Stats and Pool.WaitFor; faults (pool crash, hang, refusal, slow
// replies, restarts, failed authorization) can be injected at run time.
// Each job carries the pool's wall-clock send time inside coinb1 so that a
// miner simulator can measure job fan-out latency (see JobTimestamp).
package poolsim
