// Package noise is the encrypted, authenticated transport of Stratum V2:
// the Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256 handshake (the client
// initiates; the pool proves its static key with a certificate signed by
// its authority key) and the encrypted SV2 frames that follow it.
//
// The cryptography is btcec's ellswift and schnorr packages, x/crypto's
// ChaCha20-Poly1305 and the standard library's SHA-256 and HMAC; this
// package only arranges them as the SV2 specification describes (section
// 4; its errata are in docs/SV2.md). Ephemeral keys, their 64-byte
// encodings and the clock can be injected, so that tests replay fixed
// transcripts byte for byte.
//
// A failed handshake or frame is reported with one of the sentinel errors
// (ErrWrongAuthority, ErrCertExpired, ErrCertNotYetValid, ErrTampered,
// ErrBadCertificate) wrapped in a one-line message; after any transport
// error the Conn is unusable, because both sides' nonces have diverged.
package noise
