// Echo client on node ws@8, run by TestInteropScripts.
//
// Usage: node echo_client.js ws://host:port/   (or wss://, trusting the CA
// in the PEM file named by GALE_CA)
//
// Sends text, binary and fragmented messages and a ping to an echo server,
// checks every echo byte for byte, closes with 1000 and a reason and checks
// the echoed code. Exits non-zero on any mismatch.
'use strict';

const WebSocket = require('ws');

const url = process.argv[2];
if (!url) {
  console.error('usage: node echo_client.js ws://host:port/');
  process.exit(2);
}

function fail(what) {
  console.log('FAIL:', what);
  process.exit(1);
}

setTimeout(() => fail('timed out'), 30000).unref();

// ws offers permessage-deflate by default; the server may decline it.
const opts = { handshakeTimeout: 10000 };
if (process.env.GALE_CA) opts.ca = require('fs').readFileSync(process.env.GALE_CA);
const ws = new WebSocket(url, opts);
ws.on('upgrade', (res) => console.log('extensions:', res.headers['sec-websocket-extensions'] || '(none)'));
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

// send writes parts as one message: every part but the last with fin false.
function send(parts, binary) {
  parts.forEach((p, i) => ws.send(p, { binary, fin: i === parts.length - 1 }));
}

async function echo(what, parts, binary) {
  send(parts, binary);
  const want = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const { data, isBinary } = await next();
  if (isBinary !== binary) fail(`${what}: binary=${isBinary}, want ${binary}`);
  if (!want.equals(data)) fail(`${what}: echo differs (${data.length} bytes, want ${want.length})`);
  console.log('ok:', what, want.length, 'bytes');
}

ws.on('open', async () => {
  await echo('empty text', [''], false);
  await echo('text', ['héllo wörld ✓ 😀 '.repeat(500)], false);
  const bin = Buffer.alloc(76800);
  for (let i = 0; i < bin.length; i++) bin[i] = i & 0xff;
  await echo('binary', [bin], true);
  await echo('fragmented text', ['This is the 1st frame\r\n', '2nd ✓\r\n', '3rd 😀\r\n'], false);
  await echo('fragmented binary', [Buffer.from([0, 1]), Buffer.alloc(0), Buffer.alloc(70000, 0xff)], true);

  const ping = Buffer.from('node ping');
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(ping);
  const got = await pong;
  if (!ping.equals(got)) fail(`pong payload ${JSON.stringify(got.toString())}, want "node ping"`);
  console.log('ok: pong');

  ws.on('close', (code, reason) => {
    if (code !== 1000) fail(`echoed close code ${code}, want 1000`);
    console.log('ok: close', code, JSON.stringify(reason.toString()));
    process.exit(0);
  });
  ws.close(1000, 'node done');
});
