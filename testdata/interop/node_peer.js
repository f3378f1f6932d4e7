'use strict';
// A scripted peer for interop_test.go, built on the ws module that Debian
// ships as node-ws.
//
//	node node_peer.js version
//	node node_peer.js '<config>'
//
// config is JSON: {role: "client"|"server", url, corpus, deflate, close}.
// deflate is the perMessageDeflate option (false for none). The corpus file
// holds the messages to exchange, each as a type byte ('t' or 'b', upper
// case for a message to send in three fragments), a big-endian uint32
// length and the payload. close is {by: "peer"|"us", code, reason}.
//
// The client sends each message and checks that it comes back unchanged;
// the server (one connection, then it exits) checks that each message it
// receives is the next one of the corpus and sends it back. Whoever closes,
// closes after the last message. Everything the script sees goes to stdout
// as JSON lines: listening, open, message (one per corpus message), closed,
// error.

const fs = require('fs');

const wsPath = '/usr/share/nodejs/ws';

function emit(event) {
  // Writes to a pipe are synchronous on Linux, so nothing is lost on exit.
  process.stdout.write(JSON.stringify(event) + '\n');
}

if (process.argv[2] === 'version') {
  const WebSocket = require(wsPath); // fails here when ws is missing
  emit({ version: require(wsPath + '/package.json').version, node: process.version, ok: typeof WebSocket === 'function' });
  process.exit(0);
}

const WebSocket = require(wsPath);
const cfg = JSON.parse(process.argv[2]);

function readCorpus(path) {
  const b = fs.readFileSync(path);
  const msgs = [];
  for (let i = 0; i < b.length; ) {
    const type = String.fromCharCode(b[i]);
    const n = b.readUInt32BE(i + 1);
    msgs.push({
      binary: type.toLowerCase() === 'b',
      fragmented: type !== type.toLowerCase(),
      data: b.subarray(i + 5, i + 5 + n),
    });
    i += 5 + n;
  }
  return msgs;
}

const corpus = readCorpus(cfg.corpus);
// Compress every message, however short, unless told otherwise.
const perMessageDeflate = cfg.deflate === false ? false : { threshold: 0, ...cfg.deflate };
const maxPayload = 64 << 20;

// view is what this side settled: the public extensions getter names the
// extensions only, so the parameters come from the extension object, read
// the way ws itself reads them to set up zlib.
function view(ws, isServer) {
  const pmd = ws._extensions['permessage-deflate'];
  if (!pmd) return null;
  const p = pmd.params;
  const local = isServer ? 'server' : 'client';
  const remote = isServer ? 'client' : 'server';
  const bits = (v) => (typeof v === 'number' ? v : 15);
  return {
    localNoContextTakeover: !!p[local + '_no_context_takeover'],
    remoteNoContextTakeover: !!p[remote + '_no_context_takeover'],
    localMaxWindowBits: bits(p[local + '_max_window_bits']),
    remoteMaxWindowBits: bits(p[remote + '_max_window_bits']),
  };
}

// check compares message i as received with the corpus.
function check(i, data, isBinary) {
  if (i >= corpus.length) {
    return 'unexpected message ' + i + ' (' + data.length + ' bytes)';
  }
  const want = corpus[i];
  if (isBinary !== want.binary) {
    return 'binary=' + isBinary + ', want ' + want.binary;
  }
  if (!Buffer.isBuffer(data) || !data.equals(want.data)) {
    let at = 0;
    while (at < data.length && at < want.data.length && data[at] === want.data[at]) at++;
    return 'got ' + data.length + ' bytes, want ' + want.data.length + '; first difference at byte ' + at;
  }
  return '';
}

// send sends message i of the corpus (or data in its place), in three
// fragments cut one and two bytes past the thirds when the corpus says so.
function send(ws, i, data) {
  const m = corpus[i];
  if (!m.fragmented) {
    ws.send(data, { binary: m.binary });
    return;
  }
  const cuts = [0, Math.floor(data.length / 3) + 1, Math.floor((2 * data.length) / 3) + 2, data.length];
  for (let k = 0; k < 3; k++) {
    ws.send(data.subarray(cuts[k], cuts[k + 1]), { binary: m.binary, fin: k === 2 });
  }
}

function onClose(code, reason) {
  emit({ event: 'closed', code, reason: reason.toString() });
}

function onError(err) {
  emit({ event: 'error', error: String(err) });
  process.exitCode = 1;
}

function runClient() {
  const ws = new WebSocket(cfg.url, { perMessageDeflate, maxPayload });
  // The handshake request, which ws keeps until the response arrives.
  const req = ws._req;
  let request = null;
  let response = null;
  ws.on('upgrade', (res) => {
    request = req.getHeader('sec-websocket-extensions') ?? null;
    response = res.headers['sec-websocket-extensions'] ?? null;
  });
  let next = 0;
  ws.on('open', () => {
    emit({ event: 'open', request, response, extensions: ws.extensions, view: view(ws, false) });
    if (corpus.length > 0) send(ws, 0, corpus[0].data);
  });
  ws.on('message', (data, isBinary) => {
    emit({ event: 'message', index: next, error: check(next, data, isBinary) });
    next++;
    if (next < corpus.length) {
      send(ws, next, corpus[next].data);
    } else if (cfg.close.by === 'peer') {
      ws.close(cfg.close.code, cfg.close.reason);
    }
  });
  ws.on('close', onClose);
  ws.on('error', onError);
}

function runServer() {
  const wss = new WebSocket.WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate,
    maxPayload,
  });
  let response = null;
  wss.on('headers', (headers) => {
    const h = headers.find((line) => /^sec-websocket-extensions:/i.test(line));
    response = h ? h.replace(/^[^:]*:\s*/, '') : null;
  });
  wss.on('listening', () => emit({ event: 'listening', port: wss.address().port }));
  wss.on('error', onError);
  wss.once('connection', (ws, req) => {
    emit({
      event: 'open',
      request: req.headers['sec-websocket-extensions'] ?? null,
      response,
      extensions: ws.extensions,
      view: view(ws, true),
    });
    let next = 0;
    ws.on('message', (data, isBinary) => {
      const error = check(next, data, isBinary);
      emit({ event: 'message', index: next, error });
      if (error === '') {
        send(ws, next, data);
      } else {
        ws.send(data, { binary: isBinary });
      }
      next++;
      if (next === corpus.length && cfg.close.by === 'peer') {
        ws.close(cfg.close.code, cfg.close.reason);
      }
    });
    ws.on('close', (code, reason) => {
      onClose(code, reason);
      wss.close();
    });
    ws.on('error', onError);
  });
}

if (cfg.role === 'client') {
  runClient();
} else {
  runServer();
}
