"""permessage-deflate window-size peer on Debian's python3-websockets (10.x),
run by TestDeflateWindowPeers.

Usage:
  /usr/bin/python3 window_peer.py client ws://host:port/ S C
  /usr/bin/python3 window_peer.py server S C [require]

S and C are the server_max_window_bits and client_max_window_bits it asks
for (8..15; C "novalue" offers client_max_window_bits without a value).

client: offers both, then for each message it builds (every size 8..15
exercises the window) sends it, reads the echo, checks it byte for byte;
prints "RESULT {json}" with the negotiated extension and exits non-zero on
a mismatch. server: listens on 127.0.0.1, prints its port, echoes every
message, and exits when stdin closes; with "require" it declines offers
without client_max_window_bits. Either way the peer inflates with the
agreed window, so a message from Gale that refers further back than it
into an earlier message fails here.

zlib cannot compress a raw stream with a 256-byte window, so websockets
cannot send with 8 bits; the Go test asks it for 9 in its own direction.
"""

import asyncio
import json
import os
import random
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)


def bits(s):
    return True if s == "novalue" else int(s)


def messages():
    rnd = random.Random(7)
    out = []
    for n in (300, 2000, 9000, 40000):
        block = bytes(rnd.getrandbits(8) for _ in range(64))
        text = "".join('{"id":%d,"room":"lobby","text":"window message %d"}\n' % (i, i * 7) for i in range(n // 48))
        out.append(block + text.encode() + block)
        out.append(text)
        out.append(text)  # the same again: context takeover makes it cheap
    return out


async def client(url, s, c):
    ext = ClientPerMessageDeflateFactory(server_max_window_bits=s, client_max_window_bits=c)
    async with websockets.connect(url, extensions=[ext], compression=None, max_size=None,
                                  open_timeout=10, close_timeout=10) as ws:
        for i, m in enumerate(messages()):
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != m:
                print(f"FAIL: echo {i} differs ({len(got)} bytes, want {len(m)})", flush=True)
                sys.exit(1)
        header = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        await ws.close(1000)
        print("RESULT " + json.dumps({"extensions": header}), flush=True)


async def server(s, c, require):
    ext = ServerPerMessageDeflateFactory(server_max_window_bits=s, client_max_window_bits=c,
                                         require_client_max_window_bits=require)

    async def echo(ws, path=None):
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(echo, "127.0.0.1", 0, extensions=[ext], compression=None, max_size=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "client":
        asyncio.run(client(a[1], bits(a[2]), bits(a[3])))
    elif len(a) in (3, 4) and a[0] == "server":
        asyncio.run(server(bits(a[1]), bits(a[2]), len(a) == 4 and a[3] == "require"))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
