"""A scripted peer for interop_test.go, built on the websockets package
(Debian's python3-websockets), through its asyncio API of versions 10 to 13
(websockets.legacy).

    python3 python_peer.py version
    python3 python_peer.py '<config>'

config is JSON: {role: "client"|"server", url, corpus, deflate, close}.
deflate is null (no compression), "default" (the package's own
permessage-deflate settings) or the keyword arguments of the
permessage-deflate factory for the role. The corpus file holds the messages
to exchange, each as a type byte ('t' or 'b', upper case for a message to
send in three fragments), a big-endian uint32 length and the payload. close is {by: "peer"|"us", code, reason}.

The client sends each message and checks that it comes back unchanged; the
server (one connection, then it exits) checks that each message it receives
is the next one of the corpus and sends it back. Whoever closes, closes
after the last message. Everything the script sees goes to stdout as JSON
lines: listening, open, message (one per corpus message), closed, error.
"""

import asyncio
import json
import struct
import sys


failed = False


def emit(event):
    global failed
    if event.get("event") == "error":
        failed = True
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def version():
    import websockets

    v = websockets.version.version
    major = int(v.split(".")[0])
    emit({"version": v, "python": sys.version.split()[0], "ok": 10 <= major <= 13})


def read_corpus(path):
    with open(path, "rb") as f:
        b = f.read()
    msgs = []
    i = 0
    while i < len(b):
        typ = b[i : i + 1]
        (n,) = struct.unpack(">I", b[i + 1 : i + 5])
        msgs.append((typ.lower() == b"b", typ.isupper(), b[i + 5 : i + 5 + n]))
        i += 5 + n
    return msgs


def compression_kwargs(deflate, factory):
    if deflate is None:
        return {"compression": None}
    if deflate == "default":
        return {"compression": "deflate"}
    return {"compression": None, "extensions": [factory(**deflate)]}


def view(ws):
    from websockets.extensions.permessage_deflate import PerMessageDeflate

    for ext in ws.extensions:
        if isinstance(ext, PerMessageDeflate):
            return {
                "localNoContextTakeover": ext.local_no_context_takeover,
                "remoteNoContextTakeover": ext.remote_no_context_takeover,
                "localMaxWindowBits": ext.local_max_window_bits,
                "remoteMaxWindowBits": ext.remote_max_window_bits,
            }
    return None


def opened(ws):
    emit(
        {
            "event": "open",
            "request": ws.request_headers.get("Sec-WebSocket-Extensions"),
            "response": ws.response_headers.get("Sec-WebSocket-Extensions"),
            "extensions": ",".join(ext.name for ext in ws.extensions),
            "view": view(ws),
        }
    )


def check(corpus, i, msg):
    """Compares message i as received with the corpus; "" when equal."""
    if i >= len(corpus):
        return "unexpected message %d" % i
    binary, _, want = corpus[i]
    if isinstance(msg, str):
        if binary:
            return "got text, want binary"
        got = msg.encode("utf-8")
    else:
        if not binary:
            return "got binary, want text"
        got = msg
    if got != want:
        at = 0
        while at < min(len(got), len(want)) and got[at] == want[at]:
            at += 1
        return "got %d bytes, want %d; first difference at byte %d" % (len(got), len(want), at)
    return ""


async def send(ws, corpus, i, msg):
    """Sends msg, message i of the corpus, in three fragments cut at the
    thirds when the corpus says so (text is cut between characters)."""
    if not corpus[i][1]:
        await ws.send(msg)
        return
    n = len(msg)
    await ws.send([msg[: n // 3], msg[n // 3 : 2 * n // 3], msg[2 * n // 3 :]])


def payload(corpus, i):
    binary, _, data = corpus[i]
    return data if binary else data.decode("utf-8")


async def closing(ws, close):
    """Closes after the last message when this side is to, or waits for the
    other side to, and reports the close frame received."""
    from websockets.exceptions import ConnectionClosed

    if close["by"] == "peer":
        await ws.close(close["code"], close["reason"])
    else:
        try:
            msg = await ws.recv()
            emit({"event": "error", "error": "unexpected message after the last: %r" % msg[:40]})
        except ConnectionClosed:
            pass
        await ws.wait_closed()
    emit({"event": "closed", "code": ws.close_code, "reason": ws.close_reason})


# Common options: no keepalive pings, no message size limit, a bounded
# close.
options = {"max_size": None, "ping_interval": None, "close_timeout": 10}


async def client(cfg, corpus):
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.legacy.client import connect

    kw = compression_kwargs(cfg["deflate"], ClientPerMessageDeflateFactory)
    async with connect(cfg["url"], **options, **kw) as ws:
        opened(ws)
        for i in range(len(corpus)):
            await send(ws, corpus, i, payload(corpus, i))
            msg = await ws.recv()
            emit({"event": "message", "index": i, "error": check(corpus, i, msg)})
        await closing(ws, cfg["close"])


async def server(cfg, corpus):
    from websockets.exceptions import ConnectionClosed
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.legacy.server import serve

    done = asyncio.get_running_loop().create_future()

    async def handler(ws, path=None):
        if done.done():
            return
        try:
            opened(ws)
            for i in range(len(corpus)):
                msg = await ws.recv()
                error = check(corpus, i, msg)
                emit({"event": "message", "index": i, "error": error})
                if error:
                    await ws.send(msg)
                else:
                    await send(ws, corpus, i, msg)
            await closing(ws, cfg["close"])
        except ConnectionClosed as e:
            emit({"event": "error", "error": "connection closed early: %s" % e})
        finally:
            if not done.done():
                done.set_result(None)

    kw = compression_kwargs(cfg["deflate"], ServerPerMessageDeflateFactory)
    async with serve(handler, "127.0.0.1", 0, **options, **kw) as srv:
        emit({"event": "listening", "port": srv.sockets[0].getsockname()[1]})
        await done


def main():
    if sys.argv[1] == "version":
        version()
        return
    cfg = json.loads(sys.argv[1])
    corpus = read_corpus(cfg["corpus"])
    try:
        asyncio.run(client(cfg, corpus) if cfg["role"] == "client" else server(cfg, corpus))
    except Exception as e:
        emit({"event": "error", "error": "%s: %s" % (type(e).__name__, e)})
    sys.exit(1 if failed else 0)


main()
