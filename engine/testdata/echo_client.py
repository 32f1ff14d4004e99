"""Echo client on Debian's python3-websockets (10.x), run by TestInteropScripts.

Usage: /usr/bin/python3 echo_client.py ws://host:port/
       GALE_CA=ca.pem /usr/bin/python3 echo_client.py wss://host:port/

Sends text, binary and fragmented messages and a ping to an echo server,
checks every echo byte for byte, closes with 1000 and a reason and checks
the echoed code. Exits non-zero on any mismatch.
"""

import asyncio
import os
import ssl
import sys

import websockets


def check(ok, what):
    if not ok:
        print("FAIL:", what, flush=True)
        sys.exit(1)


async def echo(ws, msg, what):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 10)
    want = msg[0][:0].join(msg) if isinstance(msg, list) else msg
    check(type(got) is type(want), f"{what}: got {type(got).__name__}, want {type(want).__name__}")
    check(got == want, f"{what}: echo differs ({len(got)} bytes, want {len(want)})")
    size = len(want.encode() if isinstance(want, str) else want)
    print("ok:", what, size, "bytes", flush=True)


async def main(url):
    # wss://: an ssl context that trusts the test's CA.
    ctx = ssl.create_default_context(cafile=os.environ["GALE_CA"]) if url.startswith("wss:") else None
    async with websockets.connect(url, ssl=ctx, compression=None, max_size=None, open_timeout=10, close_timeout=10) as ws:
        await echo(ws, "", "empty text")
        await echo(ws, "héllo wörld ✓ 😀 " * 500, "text")
        await echo(ws, bytes(range(256)) * 300, "binary")
        # An iterable is sent as one fragmented message, a frame per item.
        await echo(ws, ["This is the 1st frame\r\n", "2nd ✓\r\n", "3rd 😀\r\n"], "fragmented text")
        await echo(ws, [b"\x00\x01", b"", b"\xff" * 70000], "fragmented binary")

        pong = await ws.ping(b"python ping")
        await asyncio.wait_for(pong, 10)  # resolved by the pong with the same payload
        print("ok: pong", flush=True)

        await ws.close(1000, "python done")
        check(ws.close_code == 1000, f"echoed close code {ws.close_code}, want 1000")
        print("ok: close", ws.close_code, repr(ws.close_reason), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: echo_client.py ws://host:port/", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1]), 30))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print("FAIL:", type(e).__name__, e, flush=True)
        sys.exit(1)
