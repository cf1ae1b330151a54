// Package codec turns the bytes of the two wire protocols btcagent speaks into
// typed values and back: Stratum V1 JSON-RPC lines (miners, and the JSON half
// of the pool link) and the BTCAgent binary ex-messages (0x7F frames) that the
// agent and a btcpool sserver exchange on the same TCP stream.
//
// The package does no I/O and knows nothing about actors. The share path
// (mining.submit parsing, submit frame encoding) is written to run without heap
// allocations because it runs once per share for every miner of a farm.
package codec
