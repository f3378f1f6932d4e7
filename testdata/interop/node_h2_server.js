'use strict';
// An HTTP/2 server for dial_h2_test.go, on Node.js's own http2 module: it
// takes WebSockets over HTTP/2 (RFC 8441) from our Dial and bridges each
// stream to a plain TCP connection to the test, so that the test speaks
// the WebSocket's server side over an ordinary socket.
//
//	node node_h2_server.js version
//	node node_h2_server.js '<config>'
//
// config is JSON: {tls, cert, key, connect, bridge, response}. With tls
// it serves HTTPS with the PEM files cert and key, else cleartext HTTP/2
// with prior knowledge (h2c). connect sets enableConnectProtocol
// (SETTINGS_ENABLE_CONNECT_PROTOCOL). bridge is the test's TCP address
// (host:port). response holds headers added to each 200 response.
//
// It listens on a loopback port and prints one JSON line per event:
// {port} once listening; {session} for each HTTP/2 connection;
// {headers} with each request's header list. An extended CONNECT with
// :protocol websocket is answered 200 and bridged both ways, the end of
// either side ending the other (END_STREAM, or a TCP FIN); on the path
// /reset the stream is destroyed, which resets it with INTERNAL_ERROR,
// once the first bytes arrive.
// Any other request is answered 400. It runs until killed.

const http2 = require('http2');
const net = require('net');
const fs = require('fs');

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

if (process.argv[2] === 'version') {
  emit({ version: process.version, ok: typeof http2.createServer === 'function' });
  process.exit(0);
}

const cfg = JSON.parse(process.argv[2]);
const options = { settings: { enableConnectProtocol: !!cfg.connect } };
let server;
if (cfg.tls) {
  options.cert = fs.readFileSync(cfg.cert);
  options.key = fs.readFileSync(cfg.key);
  server = http2.createSecureServer(options);
} else {
  server = http2.createServer(options);
}

let sessions = 0;
server.on('session', () => {
  sessions++;
  emit({ session: sessions });
});

server.on('stream', (stream, headers) => {
  const plain = {};
  for (const [k, v] of Object.entries(headers)) plain[k] = String(v);
  emit({ headers: plain });
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({ ':status': 400 });
    stream.end('websocket: not an extended CONNECT\n');
    return;
  }
  stream.respond(Object.assign({ ':status': 200 }, cfg.response || {}));
  if (headers[':path'] === '/reset') {
    stream.on('error', () => {});
    stream.once('data', () => stream.destroy(new Error('reset by the test')));
    return;
  }
  const [host, port] = cfg.bridge.split(':');
  const sock = net.connect(Number(port), host);
  sock.setNoDelay(true);
  sock.pipe(stream); // the socket's FIN ends the stream
  stream.pipe(sock); // END_STREAM half-closes the socket
  const fail = () => {
    sock.destroy();
    stream.destroy();
  };
  sock.on('error', fail);
  stream.on('error', fail);
  stream.on('aborted', fail);
  stream.on('close', () => {
    if (stream.rstCode) sock.destroy();
  });
});

server.listen(0, '127.0.0.1', () => {
  emit({ port: server.address().port });
});
