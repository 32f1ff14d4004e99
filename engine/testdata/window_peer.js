// permessage-deflate window-size peer on node ws, run by
// TestDeflateWindowPeers. Same usage as window_peer.py:
//
//   node window_peer.js client ws://host:port/ S C
//   node window_peer.js server S C
//
// S and C are serverMaxWindowBits and clientMaxWindowBits (8..15). The
// client offers both, echoes its messages through the server and checks
// each byte for byte, then prints "RESULT {json}". The server prints its
// port, echoes every message (threshold 0: it compresses everything) and
// exits when stdin closes; with clientMaxWindowBits set, node ws declines
// offers without client_max_window_bits, so it is also the server that
// requires the parameter.
const { WebSocket, WebSocketServer } = require('ws');

const [mode, ...rest] = process.argv.slice(2);

function messages() {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  const out = [];
  for (const n of [300, 2000, 9000, 40000]) {
    const block = Buffer.from(Array.from({ length: 64 }, rnd));
    let text = '';
    for (let i = 0; i < Math.floor(n / 48); i++) text += `{"id":${i},"room":"lobby","text":"window message ${i * 7}"}\n`;
    out.push(Buffer.concat([block, Buffer.from(text), block]), text, text);
  }
  return out;
}

if (mode === 'client') {
  const [url, s, c] = rest;
  const ws = new WebSocket(url, {
    perMessageDeflate: { serverMaxWindowBits: +s, clientMaxWindowBits: +c, threshold: 0 },
    maxPayload: 0,
  });
  const msgs = messages();
  let i = 0;
  let extensions = '';
  ws.on('upgrade', (res) => { extensions = res.headers['sec-websocket-extensions'] || ''; });
  const fail = (why) => { console.log('FAIL: ' + why); process.exit(1); };
  ws.on('open', () => ws.send(msgs[0], { binary: typeof msgs[0] !== 'string' }));
  ws.on('message', (data, isBinary) => {
    const want = msgs[i];
    const ok = typeof want === 'string' ? !isBinary && data.toString() === want : isBinary && Buffer.compare(data, want) === 0;
    if (!ok) fail(`echo ${i} differs (${data.length} bytes)`);
    if (++i === msgs.length) {
      console.log('RESULT ' + JSON.stringify({ extensions }));
      ws.close(1000);
      return;
    }
    ws.send(msgs[i], { binary: typeof msgs[i] !== 'string' });
  });
  ws.on('close', (code) => process.exit(i === msgs.length && code === 1000 ? 0 : 1));
  ws.on('error', (e) => fail(e.message));
} else if (mode === 'server') {
  const [s, c] = rest;
  const wss = new WebSocketServer({
    host: '127.0.0.1', port: 0, maxPayload: 0,
    perMessageDeflate: { serverMaxWindowBits: +s, clientMaxWindowBits: +c, threshold: 0 },
  });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  wss.on('listening', () => console.log(wss.address().port));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else {
  console.error('usage: node window_peer.js client URL S C | server S C');
  process.exit(2);
}
