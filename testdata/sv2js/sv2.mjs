// An independent Stratum V2 implementation for btcagent's tests: Noise NX
// handshake and transport, and the few Mining messages the test pool and
// client need. Written from the SV2 specification on the audited
// noble/scure libraries, so that the Go code is checked against something
// it does not share code with.
import { elligatorSwift } from '@scure/btc-signer/p2p.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { concatBytes, hexToBytes, bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

export { hexToBytes, bytesToHex, concatBytes, sha256, schnorr, elligatorSwift };

export const NAME = 'Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256';
const EMPTY = new Uint8Array(0);

function nonce(n) {
  const b = new Uint8Array(12);
  new DataView(b.buffer).setBigUint64(4, n, true);
  return b;
}

// Noise's HKDF with two outputs is RFC 5869 HKDF with salt = ck, no info.
function hkdf2(ck, ikm) {
  const out = hkdf(sha256, ikm, ck, EMPTY, 64);
  return [out.slice(0, 32), out.slice(32)];
}

export class Cipher {
  constructor(k) { this.k = k; this.n = 0n; }
  encrypt(ad, pt) { return chacha20poly1305(this.k, nonce(this.n++), ad).encrypt(pt); }
  decrypt(ad, ct) { return chacha20poly1305(this.k, nonce(this.n++), ad).decrypt(ct); }
}

export class Symmetric {
  constructor() { this.ck = sha256(utf8ToBytes(NAME)); this.h = sha256(this.ck); this.c = null; }
  mixHash(d) { this.h = sha256(concatBytes(this.h, d)); }
  mixKey(ikm) { const [ck, k] = hkdf2(this.ck, ikm); this.ck = ck; this.c = new Cipher(k); }
  encryptAndHash(p) { const c = this.c ? this.c.encrypt(this.h, p) : p; this.mixHash(c); return c; }
  decryptAndHash(c) { const p = this.c ? this.c.decrypt(this.h, c) : c; this.mixHash(c); return p; }
  split() { const [k1, k2] = hkdf2(this.ck, EMPTY); return [new Cipher(k1), new Cipher(k2)]; }
}

// ECDH per SV2 4.4.2: BIP324's v2_ecdh, initiator's encoding hashed first.
const ecdh = (priv, theirs, ours, initiating) =>
  elligatorSwift.getSharedSecretBip324(priv, theirs, ours, initiating);

export function le32(v) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); return b; }

export function certPreimageHash(version, from, until, staticX) {
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, version, true); dv.setUint32(2, from, true); dv.setUint32(6, until, true);
  return sha256(concatBytes(b, staticX));
}

export function makeCert(authSecret, staticX, from, until, aux) {
  const sig = schnorr.sign(certPreimageHash(0, from, until, staticX), authSecret, aux);
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0, true); dv.setUint32(2, from, true); dv.setUint32(6, until, true);
  return concatBytes(b, sig);
}

// Initiator: actOne() → 64 bytes; readActTwo(234 bytes) → transport.
export class Initiator {
  constructor(e) { this.ss = new Symmetric(); this.e = e ?? elligatorSwift.keygen(); }
  actOne() {
    this.ss.mixHash(this.e.publicKey);
    this.ss.encryptAndHash(EMPTY);
    return this.e.publicKey;
  }
  readActTwo(msg, authorityX, nowSec) {
    if (msg.length !== 234) throw new Error(`act 2 is ${msg.length} bytes`);
    const re = msg.slice(0, 64);
    this.ss.mixHash(re);
    this.ss.mixKey(ecdh(this.e.privateKey, re, this.e.publicKey, true));
    const rs = this.ss.decryptAndHash(msg.slice(64, 144));
    this.ss.mixKey(ecdh(this.e.privateKey, rs, this.e.publicKey, true));
    const cert = this.ss.decryptAndHash(msg.slice(144));
    const staticX = elligatorSwift.decode(rs);
    const dv = new DataView(cert.buffer, cert.byteOffset);
    const version = dv.getUint16(0, true), from = dv.getUint32(2, true), until = dv.getUint32(6, true);
    if (!schnorr.verify(cert.slice(10), certPreimageHash(version, from, until, staticX), authorityX)) {
      throw new Error('certificate not signed by the authority');
    }
    if (nowSec < from || nowSec > until) throw new Error('certificate outside its window');
    const [c1, c2] = this.ss.split();
    return { send: c1, recv: c2, staticX };
  }
}

// Responder: readActOne(64 bytes); actTwo(cert) → {msg, send, recv}.
export class Responder {
  constructor(s, e) { this.ss = new Symmetric(); this.s = s; this.e = e ?? elligatorSwift.keygen(); }
  readActOne(msg) {
    if (msg.length !== 64) throw new Error(`act 1 is ${msg.length} bytes`);
    this.re = msg;
    this.ss.mixHash(msg);
    this.ss.decryptAndHash(EMPTY);
  }
  actTwo(cert) {
    this.ss.mixHash(this.e.publicKey);
    this.ss.mixKey(ecdh(this.e.privateKey, this.re, this.e.publicKey, false));
    const c1 = this.ss.encryptAndHash(this.s.publicKey);
    this.ss.mixKey(ecdh(this.s.privateKey, this.re, this.s.publicKey, false));
    const c2 = this.ss.encryptAndHash(cert);
    const [k1, k2] = this.ss.split();
    return { msg: concatBytes(this.e.publicKey, c1, c2), send: k2, recv: k1 };
  }
}

// ---- transport frames: header encrypted alone, payload in chunks ----

const MAX_CHUNK = 65535 - 16;

export function header(ext, type, len) {
  return new Uint8Array([ext & 0xff, ext >> 8, type, len & 0xff, (len >> 8) & 0xff, len >> 16]);
}

export function sealFrame(cipher, ext, type, payload) {
  const parts = [cipher.encrypt(EMPTY, header(ext, type, payload.length))];
  for (let o = 0; o < payload.length; o += MAX_CHUNK) {
    parts.push(cipher.encrypt(EMPTY, payload.slice(o, o + MAX_CHUNK)));
  }
  return concatBytes(...parts);
}

export const encryptedLen = (n) => n + 16 * Math.ceil(n / MAX_CHUNK);

// A byte reader over a socket: await read(n) returns exactly n bytes.
export class SocketReader {
  constructor(sock) {
    this.buf = new Uint8Array(0); this.waiters = []; this.ended = false;
    sock.on('data', (d) => { this.buf = concatBytes(this.buf, new Uint8Array(d)); this.wake(); });
    sock.on('end', () => { this.ended = true; this.wake(); });
    sock.on('error', () => { this.ended = true; this.wake(); });
  }
  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
  async read(n) {
    while (this.buf.length < n) {
      if (this.ended) throw new Error('connection closed');
      await new Promise((r) => this.waiters.push(r));
    }
    const out = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return out;
  }
  async readFrame(cipher) {
    const h = cipher.decrypt(EMPTY, await this.read(22));
    const ext = h[0] | (h[1] << 8), type = h[2], len = h[3] | (h[4] << 8) | (h[5] << 16);
    const ct = await this.read(encryptedLen(len));
    const parts = [];
    for (let o = 0; o < ct.length; o += MAX_CHUNK + 16) parts.push(cipher.decrypt(EMPTY, ct.slice(o, o + MAX_CHUNK + 16)));
    return { ext, type, payload: concatBytes(...parts) };
  }
}

// ---- field encoding (integers little-endian) ----

export class W {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(new Uint8Array([v])); return this; }
  u16(v) { this.parts.push(new Uint8Array([v & 0xff, v >> 8])); return this; }
  u32(v) { this.parts.push(le32(v)); return this; }
  u64(v) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); this.parts.push(b); return this; }
  bytes(b) { this.parts.push(b); return this; }
  str(s) { const b = utf8ToBytes(s); return this.u8(b.length).bytes(b); }
  b032(b) { return this.u8(b.length).bytes(b); }
  b064k(b) { return this.u16(b.length).bytes(b); }
  done() { return concatBytes(...this.parts); }
}

export class R {
  constructor(b) { this.b = b; this.o = 0; this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength); }
  need(n) { if (this.o + n > this.b.length) throw new Error('short payload'); }
  u8() { this.need(1); return this.b[this.o++]; }
  u16() { this.need(2); const v = this.dv.getUint16(this.o, true); this.o += 2; return v; }
  u32() { this.need(4); const v = this.dv.getUint32(this.o, true); this.o += 4; return v; }
  f32() { this.need(4); const v = this.dv.getFloat32(this.o, true); this.o += 4; return v; }
  bytes(n) { this.need(n); const v = this.b.slice(this.o, this.o + n); this.o += n; return v; }
  str() { return new TextDecoder().decode(this.bytes(this.u8())); }
  b032() { return this.bytes(this.u8()); }
}

export const sha256d = (b) => sha256(sha256(b));

// le256 reads 32 bytes as a little-endian number (targets, share hashes).
export const le256 = (b) => BigInt('0x' + bytesToHex(Uint8Array.from(b).reverse()));
