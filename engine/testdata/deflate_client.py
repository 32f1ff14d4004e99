"""permessage-deflate client on Debian's python3-websockets (10.x), run by
TestDeflateScripts.

Usage: /usr/bin/python3 deflate_client.py ws://host:port/

Connects with websockets' default compression (permessage-deflate with
context takeover and client_max_window_bits), echoes compressible text,
binary and a fragmented message, then the same message twice, checking
every echo byte for byte. Prints one line "RESULT {json}" with the
negotiated extension, the compressed (RSV1) frames received and the bytes
counted on the socket; exits non-zero on any mismatch.
"""

import asyncio
import json
import sys

import websockets
from websockets.extensions import permessage_deflate
from websockets.legacy.protocol import WebSocketCommonProtocol

wire = {"in": 0, "out": 0, "rsv1": 0}

_data_received = WebSocketCommonProtocol.data_received


def data_received(self, data):
    wire["in"] += len(data)
    _data_received(self, data)


WebSocketCommonProtocol.data_received = data_received

_decode = permessage_deflate.PerMessageDeflate.decode


def decode(self, frame, **kw):
    if frame.rsv1:
        wire["rsv1"] += 1
    return _decode(self, frame, **kw)


permessage_deflate.PerMessageDeflate.decode = decode


def check(ok, what):
    if not ok:
        print("FAIL:", what, flush=True)
        sys.exit(1)


def json_lines(n, seed):
    out, i = [], 0
    size = 0
    while size < n:
        line = '{"id":%d,"user":"gale-%d","room":"lobby","text":"héllo wörld ✓ message %d","ts":%d}\n' % (
            seed * 1000 + i, (seed + i) % 97, i * 7 + seed, 1700000000 + i * 13)
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)


payload = 0


async def echo(ws, msg, what):
    global payload
    in0, out0 = wire["in"], wire["out"]
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 10)
    want = msg[0][:0].join(msg) if isinstance(msg, list) else msg
    check(type(got) is type(want), f"{what}: got {type(got).__name__}, want {type(want).__name__}")
    check(got == want, f"{what}: echo differs ({len(got)} bytes, want {len(want)})")
    size = len(want.encode() if isinstance(want, str) else want)
    payload += size
    r = {"in": wire["in"] - in0, "out": wire["out"] - out0}
    print("ok:", what, size, "bytes; wire", r["out"], "out,", r["in"], "in", flush=True)
    return r


async def main(url):
    async with websockets.connect(url, max_size=None, open_timeout=10, close_timeout=10) as ws:
        write = ws.transport.write

        def counted(data):
            wire["out"] += len(data)
            write(data)

        ws.transport.write = counted
        in0, out0 = wire["in"], wire["out"]
        await echo(ws, json_lines(20000, 1), "text")
        await echo(ws, bytes((i >> 4) & 0xFF if i % 16 < 2 else 0xF0 + i % 16 for i in range(50000)), "binary")
        await echo(ws, [json_lines(3000, 2), json_lines(5000, 3), json_lines(4000, 4)], "fragmented text")
        total = {"in": wire["in"] - in0, "out": wire["out"] - out0}
        sent = payload
        msg = json_lines(8000, 42)
        first = await echo(ws, msg, "same message")
        second = await echo(ws, msg, "same message again")
        ext = [str(e) for e in ws.extensions]
        await ws.close(1000, "python done")
        check(ws.close_code == 1000, f"echoed close code {ws.close_code}, want 1000")
        header = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        print("RESULT " + json.dumps({"extensions": header, "objects": ext, "payload": sent, "total": total,
                                      "first": first, "second": second, "rsv1": wire["rsv1"]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: /usr/bin/python3 deflate_client.py ws://host:port/", file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
