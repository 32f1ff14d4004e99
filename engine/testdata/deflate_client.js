// permessage-deflate client on node ws@8, run by TestDeflateScripts.
//
// Usage: node deflate_client.js ws://host:port/ takeover|no-takeover
//
// Offers permessage-deflate (ws's default offer, client_max_window_bits,
// or with both no_context_takeover in no-takeover mode), echoes compressible
// text, binary and a fragmented compressed message, then the same message
// twice, checking every echo byte for byte. Prints one line
// "RESULT {json}" with the negotiated extension and the bytes counted on
// the socket, for the Go test to judge; exits non-zero on any mismatch.
'use strict';

const WebSocket = require('ws');

const [url, mode] = process.argv.slice(2);
if (!url || (mode !== 'takeover' && mode !== 'no-takeover')) {
  console.error('usage: node deflate_client.js ws://host:port/ takeover|no-takeover');
  process.exit(2);
}

function fail(what) {
  console.log('FAIL:', what);
  process.exit(1);
}

setTimeout(() => fail('timed out'), 30000).unref();

// ws's default offer is "permessage-deflate; client_max_window_bits" and
// accepts a server that imposes no context takeover.
const perMessageDeflate = mode === 'no-takeover'
  ? { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true }
  : { threshold: 0 };
const ws = new WebSocket(url, { handshakeTimeout: 10000, perMessageDeflate });
let extensions = '';
ws.on('upgrade', (res) => { extensions = res.headers['sec-websocket-extensions'] || ''; });
const inbox = [];
const waiters = [];
ws.on('message', (data, isBinary) => {
  const m = { data, isBinary };
  const w = waiters.shift();
  if (w) w(m); else inbox.push(m);
});
ws.on('error', (err) => fail('socket error: ' + err.message));

function next() {
  const m = inbox.shift();
  return m ? Promise.resolve(m) : new Promise((resolve) => waiters.push(resolve));
}

function jsonLines(n, seed) {
  let s = '';
  for (let i = 0; s.length < n; i++) {
    s += `{"id":${seed * 1000 + i},"user":"gale-${(seed + i) % 97}","room":"lobby","text":"héllo wörld ✓ message ${i * 7 + seed}","ts":${1700000000 + i * 13}}\n`;
  }
  return s;
}

let payload = 0;
// echo sends parts as one message and returns the socket bytes it took
// each way.
async function echo(what, parts, binary) {
  const sock = ws._socket;
  const in0 = sock.bytesRead, out0 = sock.bytesWritten;
  parts.forEach((p, i) => ws.send(p, { binary, fin: i === parts.length - 1, compress: true }));
  const want = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const { data, isBinary } = await next();
  if (isBinary !== binary) fail(`${what}: binary=${isBinary}, want ${binary}`);
  if (!want.equals(data)) fail(`${what}: echo differs (${data.length} bytes, want ${want.length})`);
  payload += want.length;
  const r = { in: sock.bytesRead - in0, out: sock.bytesWritten - out0 };
  console.log('ok:', what, want.length, 'bytes; wire', r.out, 'out,', r.in, 'in');
  return r;
}

ws.on('open', async () => {
  const sock = ws._socket;
  const in0 = sock.bytesRead, out0 = sock.bytesWritten;
  await echo('text', [jsonLines(20000, 1)], false);
  const bin = Buffer.alloc(50000);
  for (let i = 0; i < bin.length; i++) bin[i] = i % 16 < 2 ? (i >> 4) & 0xff : 0xf0 + (i % 16);
  await echo('binary', [bin], true);
  await echo('fragmented text', [jsonLines(3000, 2), jsonLines(5000, 3), jsonLines(4000, 4)], false);
  await echo('fragmented binary', [bin.subarray(0, 10000), Buffer.alloc(0), bin.subarray(10000)], true);
  const total = { in: sock.bytesRead - in0, out: sock.bytesWritten - out0 };
  const msg = jsonLines(8000, 42);
  const first = await echo('same message', [msg], false);
  const second = await echo('same message again', [msg], false);

  ws.on('close', (code) => {
    if (code !== 1000) fail(`echoed close code ${code}, want 1000`);
    console.log('RESULT ' + JSON.stringify({ extensions, payload: payload - 2 * msg.length, total, first, second }));
    process.exit(0);
  });
  ws.close(1000, 'node done');
});
