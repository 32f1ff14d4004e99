// A node ws echo server for Gale's client tests: listens on 127.0.0.1 on a
// free port, prints the port on stdout, echoes every message with its type,
// and exits when stdin closes. With the argument "deflate" it accepts
// permessage-deflate (and compresses everything, threshold 0).
const { WebSocketServer } = require('ws');

const deflate = process.argv[2] === 'deflate' ? { threshold: 0 } : false;
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.send(ws.extensions ? 'extensions: ' + ws.extensions : 'extensions: none');
});
wss.on('listening', () => console.log(wss.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
