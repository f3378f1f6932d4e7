"""compmem's clients: N python-websockets connections in one asyncio process.

Usage: clients.py URL CONNS SERVER_BITS CLIENT_BITS MODE LIFETIME

MODE is "takeover" (context takeover both ways), "notakeover" (both
server_no_context_takeover and client_no_context_takeover offered) or
"plain" (no permessage-deflate offered; the bits are ignored). Each
connection offers server_max_window_bits=SERVER_BITS and
client_max_window_bits=CLIENT_BITS, checks that the server settled exactly
that, sends three 4 KiB JSON-like texts one after the other, checks each
echo, and then stays open and silent: no pings, no close.

Prints one line, "idle conns=... echoes=... compressed=... wire=...", once
every connection is idle ("compressed" counts the echoes that came with
RSV1 set, "wire" their payload bytes as sent), or "error: ..." and exits 1.
Then it waits for its standard input to end, or LIFETIME seconds, and
exits without closing anything: the kernel resets the connections.
"""

import asyncio
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)

MESSAGE_SIZE = 4096
MESSAGES = 3
HANDSHAKES_AT_ONCE = 50  # connections opening together, so no listen queue overflows
CONNECT_TIMEOUT = 120  # seconds for every connection to open and echo

STATUSES = ["active", "away", "offline"]
TAGS = ["go", "python", "websocket", "deflate", "memory", "server", "client"]

stats = {"compressed": 0, "wire": 0}

_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    # Counts what the server sent compressed, before it is inflated.
    if frame.rsv1:
        stats["compressed"] += 1
        stats["wire"] += len(frame.data)
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode


def message(conn, seq):
    """A text of exactly MESSAGE_SIZE bytes, the same for the same (conn, seq):
    a JSON object holding an array of small records drawn from a linear
    congruential generator, so that it compresses about as chat or API
    traffic does."""
    x = ((conn * MESSAGES + seq + 1) * 2654435761) % 2**32
    head = '{"conn":%d,"seq":%d,"items":[' % (conn, seq)
    tail = '],"pad":"%s"}'
    items = []
    size = len(head) + len(tail % "")
    while True:
        x = (x * 1103515245 + 12345) % 2**31
        item = '{"id":%d,"user":"user-%05d","status":"%s","score":%d,"tags":["%s","%s"]}' % (
            len(items),
            x % 100000,
            STATUSES[x % 3],
            (x >> 8) % 1000,
            TAGS[(x >> 4) % 7],
            TAGS[(x >> 12) % 7],
        )
        grow = len(item) + (1 if items else 0)
        if size + grow > MESSAGE_SIZE:
            break
        items.append(item)
        size += grow
    text = head + ",".join(items) + tail % (" " * (MESSAGE_SIZE - size))
    assert len(text) == MESSAGE_SIZE, len(text)
    return text


async def session(url, k, server_bits, client_bits, mode, gate):
    if mode == "plain":
        extensions = None
    else:
        no_takeover = mode == "notakeover"
        extensions = [
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=no_takeover,
                client_no_context_takeover=no_takeover,
                server_max_window_bits=server_bits,
                client_max_window_bits=client_bits,
                compress_settings={"memLevel": 5},  # python-websockets' default
            )
        ]
    async with gate:
        ws = await websockets.connect(
            url,
            extensions=extensions,
            compression=None,
            ping_interval=None,
            open_timeout=CONNECT_TIMEOUT,
            close_timeout=1,
        )
    if mode == "plain":
        if ws.extensions:
            raise RuntimeError("conn %d: extensions %r, none offered" % (k, ws.extensions))
    else:
        want = (no_takeover, no_takeover, server_bits, client_bits)
        if len(ws.extensions) != 1:
            raise RuntimeError("conn %d: extensions %r, want one permessage-deflate" % (k, ws.extensions))
        e = ws.extensions[0]
        got = (
            e.remote_no_context_takeover,
            e.local_no_context_takeover,
            e.remote_max_window_bits,
            e.local_max_window_bits,
        )
        if got != want:
            raise RuntimeError("conn %d: settled %r, offered %r" % (k, e, want))
    for seq in range(MESSAGES):
        text = message(k, seq)
        await ws.send(text)
        echo = await ws.recv()
        if echo != text:
            raise RuntimeError("conn %d: echo %d differs from what was sent" % (k, seq))
    return ws


async def main():
    url = sys.argv[1]
    conns, server_bits, client_bits = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    mode, lifetime = sys.argv[5], float(sys.argv[6])
    if mode not in ("takeover", "notakeover", "plain"):
        raise SystemExit("unknown mode %r" % mode)
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    try:
        sockets = await asyncio.wait_for(
            asyncio.gather(
                *(session(url, k, server_bits, client_bits, mode, gate) for k in range(conns))
            ),
            CONNECT_TIMEOUT,
        )
    except BaseException as e:  # a timeout or a failed connection
        print("error: %r" % e, flush=True)
        os._exit(1)
    print(
        "idle conns=%d echoes=%d compressed=%d wire=%d"
        % (len(sockets), len(sockets) * MESSAGES, stats["compressed"], stats["wire"]),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.buffer.read), lifetime)
    except asyncio.TimeoutError:
        pass
    os._exit(0)  # without closing: the connections end when the process does


asyncio.run(main())
