"""Strict inflater for permessage-deflate messages, run by TestDeflateWindows
and the window interop tests with /usr/bin/python3 (zlib only).

Reads one JSON object on stdin: {"bits": N, "takeover": bool, "messages":
[base64, ...]}, each message a compressed payload with its 00 00 ff ff tail
stripped, in the order sent. Inflates them with zlib's raw inflater and a
2^N-byte window (one stream with context takeover, a fresh one per message
without), and prints {"messages": [base64, ...]} of what they inflate to,
or "FAIL ..." and exits 1.

zlib lets a back-reference reach past its window into the output of the
same inflate() call, so output is asked for one byte per call: every
reference must then lie within the 2^N bytes of history zlib keeps, which
is exactly the limit the sender agreed to.
"""

import base64
import json
import sys
import zlib


def main():
    req = json.load(sys.stdin)
    bits = req["bits"]
    out = []
    d = None
    for i, m in enumerate(req["messages"]):
        if d is None or not req["takeover"]:
            d = zlib.decompressobj(-bits)
        data = base64.b64decode(m) + b"\x00\x00\xff\xff"
        got = bytearray()
        try:
            while True:
                b = d.decompress(data, 1)
                data = d.unconsumed_tail
                got += b
                if not b and not data:
                    break
        except zlib.error as e:
            print(f"FAIL message {i}: {e} after {len(got)} bytes (window {1 << bits})", flush=True)
            sys.exit(1)
        out.append(base64.b64encode(bytes(got)).decode())
    print(json.dumps({"messages": out}), flush=True)


if __name__ == "__main__":
    main()
