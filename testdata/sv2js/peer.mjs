// The JS side of btcagent's SV2 interop tests (codec/sv2/noise/js_test.go).
//
//   node peer.mjs transcript <noise_handshake_derived.json>
//       fixed-key handshake and transport frames, printed as one JSON line
//   node peer.mjs pool <authority_secret_hex> <new|old> <target_wire_hex> [batch]
//       a tiny SV2 pool on 127.0.0.1 (one connection); prints
//       {"listening":port}, then one JSON line per event. With batch > 1,
//       accepted shares are acknowledged by one SubmitShares.Success per
//       batch (last_sequence_number, new_submits_accepted_count), as pools
//       may do; rejections are answered at once.
//   node peer.mjs client <port> <authority_x_hex>
//       handshake + SetupConnection against a server on 127.0.0.1
import net from 'node:net';
import { readFileSync } from 'node:fs';
import {
  Initiator, Responder, SocketReader, W, R, sealFrame, makeCert, sha256d, le256, le32,
  hexToBytes, bytesToHex, concatBytes, sha256, elligatorSwift,
} from './sv2.mjs';

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const CH = 0x8000;

function transcript(path) {
  const v = JSON.parse(readFileSync(path, 'utf8'));
  const k = v.keys;
  const key = (s, e) => ({ privateKey: hexToBytes(s), publicKey: hexToBytes(e) });
  const staticKey = key(k.responder_static_secret_hex, k.responder_static_ellswift_hex);
  const staticX = elligatorSwift.decode(staticKey.publicKey);
  const c = v.certificate;
  const cert = makeCert(hexToBytes(k.authority_secret_key_hex), staticX, c.valid_from, c.not_valid_after,
    hexToBytes(c.bip340_aux_rand_hex));
  const ini = new Initiator(key(k.initiator_ephemeral_secret_hex, k.initiator_ephemeral_ellswift_hex));
  const res = new Responder(staticKey, key(k.responder_ephemeral_secret_hex, k.responder_ephemeral_ellswift_hex));
  const act1 = ini.actOne();
  res.readActOne(act1);
  const a2 = res.actTwo(cert);
  const it = ini.readActTwo(a2.msg, hexToBytes(k.authority_public_key_x_only_hex), c.valid_from + 60);
  const frames = v.transport_messages.map((m) => {
    const f = hexToBytes(m.plaintext_frame_hex);
    const ext = f[0] | (f[1] << 8);
    const cipher = m.direction === 'initiator->responder' ? it.send : a2.send;
    return bytesToHex(sealFrame(cipher, ext, f[2], f.slice(6)));
  });
  const ce = v.chunking_example;
  const payload = new Uint8Array(ce.payload_len).map((_, i) => i % 251);
  const chunked = sealFrame(a2.send, 0x8000, 0x1f, payload);
  out({
    act1: bytesToHex(act1), act2: bytesToHex(a2.msg), h_final: bytesToHex(ini.ss.h),
    static_x: bytesToHex(it.staticX), frames, chunked_len: chunked.length, chunked_sha256: bytesToHex(sha256(chunked)),
  });
}

function pool(authSecretHex, layout, targetHex, batchArg) {
  const batch = Math.max(1, Number(batchArg ?? 1));
  let unacked = 0;
  const authSecret = hexToBytes(authSecretHex);
  const target = le256(hexToBytes(targetHex));
  const staticKey = elligatorSwift.keygen();
  const staticX = elligatorSwift.decode(staticKey.publicKey);
  const enPrefix = hexToBytes('a1b2c3d4');
  const job = {
    id: 1, version: 0x20000000, nbits: 0x1d00ffff, ntime: Math.floor(Date.now() / 1000),
    prevhash: sha256(new TextEncoder().encode('sv2js prevhash ' + Date.now())),
    prefix: hexToBytes('02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1003a0bb0d'),
    suffix: hexToBytes('ffffffff0100f2052a01000000160014' + '11'.repeat(20) + '00000000'),
    path: [sha256(new TextEncoder().encode('a')), sha256(new TextEncoder().encode('b'))],
  };
  const server = net.createServer(async (sock) => {
    server.close();
    const rd = new SocketReader(sock);
    try {
      const resp = new Responder(staticKey);
      resp.readActOne(await rd.read(64));
      const now = Math.floor(Date.now() / 1000);
      const a2 = resp.actTwo(makeCert(authSecret, staticX, now, now + 3600));
      sock.write(a2.msg);
      out({ event: 'handshake' });
      const send = (ext, type, p) => sock.write(sealFrame(a2.send, ext, type, p));
      for (;;) {
        const f = await rd.readFrame(a2.recv);
        const r = new R(f.payload);
        if (f.type === 0x00) {
          const proto = r.u8(), minV = r.u16(), maxV = r.u16(), flags = r.u32();
          out({ event: 'setup', proto, minV, maxV, flags, host: r.str() });
          send(0, 0x01, new W().u16(2).u32(0).done());
        } else if (f.type === 0x13) {
          const req = r.u32(), user = r.str(), rate = r.f32();
          out({ event: 'open', user, rate });
          const w = new W().u32(req).u32(7).bytes(hexToBytes(targetHex)).u16(8).b032(enPrefix);
          if (layout === 'new') w.u32(0);
          send(0, 0x14, w.done());
          const jw = new W().u32(7).u32(job.id).u8(0).u32(job.version).u8(1).u8(job.path.length);
          job.path.forEach((p) => jw.bytes(p));
          send(CH, 0x1f, jw.b064k(job.prefix).b064k(job.suffix).done());
          send(CH, 0x20, new W().u32(7).u32(job.id).bytes(job.prevhash).u32(job.ntime).u32(job.nbits).done());
        } else if (f.type === 0x1b) {
          const s = { channel: r.u32(), seq: r.u32(), job: r.u32(), nonce: r.u32(), ntime: r.u32(), version: r.u32(), en: r.b032() };
          let err = '';
          if (s.channel !== 7) err = 'invalid-channel-id';
          else if (s.job !== job.id) err = 'invalid-job-id';
          else if (s.en.length !== 8) err = 'bad-extranonce-size';
          else if (((s.version ^ job.version) & ~0x1fffe000) !== 0) err = 'invalid-non-rollable-version-bit';
          let hash = new Uint8Array(32);
          if (!err) {
            let root = sha256d(concatBytes(job.prefix, enPrefix, s.en, job.suffix));
            for (const p of job.path) root = sha256d(concatBytes(root, p));
            const hdr = concatBytes(le32(s.version), job.prevhash, root, le32(s.ntime), le32(job.nbits), le32(s.nonce));
            hash = sha256d(hdr);
            if (le256(hash) > target) err = 'difficulty-too-low';
          }
          const display = bytesToHex(Uint8Array.from(hash).reverse());
          out({ event: 'share', seq: s.seq, verdict: err || 'accepted', hash: display });
          if (err) {
            send(CH, 0x1d, new W().u32(s.channel).u32(s.seq).str(err).done());
          } else if (++unacked >= batch) {
            send(CH, 0x1c, new W().u32(s.channel).u32(s.seq).u32(unacked).u64(unacked).done());
            out({ event: 'success', last: s.seq, count: unacked });
            unacked = 0;
          }
        } else {
          out({ event: 'ignored', type: f.type });
        }
      }
    } catch (e) {
      out({ event: 'closed', reason: String(e.message ?? e) });
      sock.destroy();
    }
  });
  server.listen(0, '127.0.0.1', () => out({ listening: server.address().port, static_x: bytesToHex(staticX) }));
}

function client(port, authXHex) {
  const sock = net.connect(Number(port), '127.0.0.1');
  const rd = new SocketReader(sock);
  sock.on('connect', async () => {
    try {
      const ini = new Initiator();
      sock.write(ini.actOne());
      const t = ini.readActTwo(await rd.read(234), hexToBytes(authXHex), Math.floor(Date.now() / 1000));
      const setup = new W().u8(0).u16(2).u16(2).u32(4).str('127.0.0.1').u16(Number(port))
        .str('sv2js').str('').str('').str('').done();
      sock.write(sealFrame(t.send, 0, 0x00, setup));
      const f = await rd.readFrame(t.recv);
      if (f.type !== 0x01) throw new Error(`expected SetupConnection.Success, got type ${f.type}`);
      const r = new R(f.payload);
      out({ ok: true, static_x: bytesToHex(t.staticX), used_version: r.u16(), flags: r.u32() });
      sock.end();
    } catch (e) {
      out({ ok: false, error: String(e.message ?? e) });
      sock.destroy();
      process.exitCode = 1;
    }
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'transcript') transcript(...args);
else if (mode === 'pool') pool(...args);
else if (mode === 'client') client(...args);
else { console.error('usage: node peer.mjs transcript|pool|client ...'); process.exit(2); }
