// Package sv2 encodes and decodes the Stratum V2 binary messages a
// translator (SV1 miners, SV2 pool) needs: the common SetupConnection
// messages, the Mining protocol's channel, job and share messages, and the
// 6-byte frame header. It does no I/O and no cryptography; the encrypted
// transport is package codec/sv2/noise.
//
// Byte orders follow the specification (docs/SV2.md): integers are little
// endian, U256 values (hashes, targets) travel as 32 raw bytes in internal
// order, i.e. a target read as a little-endian number. Notify turns an
// extended job into the SV1 mining.notify fields so that the repository's
// share hashing (package codec, docs/SHARES.md) validates SV2 shares.
package sv2
