'use strict';
// An HTTP/2 client for http2_test.go, on Node.js's own http2 module: it
// opens a WebSocket stream with an extended CONNECT (RFC 8441) and bridges
// it to a plain TCP connection, so that the test can speak WebSocket
// frames over the stream through an ordinary socket.
//
//	node node_h2.js version
//	node node_h2.js '<config>'
//
// config is JSON: {url, method, protocol, headers}. url is the https URL
// of the server (its certificate is not checked); method is CONNECT (sent
// with :protocol websocket, or protocol if set, once the server's SETTINGS
// allow it) or another one; headers are added to the request. The script
// prints one JSON line:
// {status, headers, body} for a response other than 2xx, after which it
// exits; for a 2xx response {status, headers, port}, port being a
// loopback TCP port. It accepts one connection there and bridges it to
// the stream both ways: the end of either side ends the other
// (END_STREAM, or a TCP FIN), and a reset or an error destroys both. It
// exits when both are done.

const http2 = require('http2');
const net = require('net');

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

if (process.argv[2] === 'version') {
  emit({ version: process.version, ok: typeof http2.connect === 'function' });
  process.exit(0);
}

const cfg = JSON.parse(process.argv[2]);
const url = new URL(cfg.url);
const session = http2.connect(url.origin, { rejectUnauthorized: false });
session.on('error', (err) => {
  emit({ error: String(err) });
  process.exit(1);
});

function request() {
  const headers = Object.assign({ ':path': url.pathname }, cfg.headers);
  if (cfg.method === 'CONNECT') {
    headers[':method'] = 'CONNECT';
    headers[':protocol'] = cfg.protocol || 'websocket';
    headers[':scheme'] = 'https';
  } else {
    headers[':method'] = cfg.method;
  }
  const stream = session.request(headers, { endStream: cfg.method !== 'CONNECT' });
  stream.on('response', (h) => {
    const status = h[':status'];
    const plain = {};
    for (const [k, v] of Object.entries(h)) {
      if (!k.startsWith(':')) plain[k] = String(v);
    }
    if (status < 200 || status >= 300) {
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => { body += d; });
      stream.on('end', () => {
        emit({ status, headers: plain, body });
        session.close();
      });
      return;
    }
    bridge(stream, status, plain);
  });
  stream.on('error', (err) => {
    emit({ error: String(err) });
    process.exit(1);
  });
}

function bridge(stream, status, headers) {
  const server = net.createServer((sock) => {
    sock.setNoDelay(true); // no Nagle delay on small writes through the bridge
    server.close();
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
      session.close();
    });
  });
  server.listen(0, '127.0.0.1', () => {
    emit({ status, headers, port: server.address().port });
  });
}

// An extended CONNECT waits for the server's SETTINGS to allow it.
if (cfg.method === 'CONNECT') {
  session.once('remoteSettings', (s) => {
    if (!s.enableConnectProtocol) {
      emit({ error: 'the server does not offer extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)' });
      process.exit(1);
    }
    request();
  });
} else {
  request();
}
