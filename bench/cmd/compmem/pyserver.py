"""compmem's python-websockets echo server, for comparison with ours.

Usage: pyserver.py BITS MODE LIFETIME

Listens on a loopback port, which it prints on its first line, and echoes
every message. With MODE "takeover" or "notakeover" it accepts
permessage-deflate with server_max_window_bits and client_max_window_bits
both at most BITS, zlib at memLevel 5 (what python-websockets' own
default configuration uses), and in "notakeover" requires no context
takeover both ways; with "plain" it accepts no extension. No keepalive
pings. It exits when its standard input ends, or after LIFETIME seconds.
"""

import asyncio
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main():
    bits, mode, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    if mode == "plain":
        extensions = None
    elif mode in ("takeover", "notakeover"):
        no_takeover = mode == "notakeover"
        extensions = [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=no_takeover,
                client_no_context_takeover=no_takeover,
                server_max_window_bits=bits,
                client_max_window_bits=bits,
                compress_settings={"memLevel": 5},
            )
        ]
    else:
        raise SystemExit("unknown mode %r" % mode)
    async with websockets.serve(
        echo,
        "127.0.0.1",
        0,
        extensions=extensions,
        compression=None,
        ping_interval=None,
        backlog=1024,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print("127.0.0.1:%d" % port, flush=True)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.buffer.read), lifetime)
        except asyncio.TimeoutError:
            pass
        os._exit(0)  # at once, without closing each connection


asyncio.run(main())
