// A node ws echo server for Gale's client tests: listens on 127.0.0.1 on a
// free port, prints the port on stdout, echoes every message with its type,
// and exits when stdin closes.
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(wss.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
