// A small HTTP/1.0 server for the lab, answering the way `python -m SimpleHTTPServer` in the
// original README does: one log line per request with the client address it saw, and a reply
// written in two parts (headers, then body) on a socket with Nagle's algorithm on. That second
// small write is what waits for a delayed ACK when one leg of a path delays its ACKs.
// Usage: node http-server.mjs HOST PORT LOG NAME   (LOG "-": the log lines go to stdout)
import fs from 'node:fs';
import { Buffer } from 'node:buffer';
import net from 'node:net';

const [host, port, log, name] = process.argv.slice(2);
const server = net.createServer({ noDelay: false }, (socket) => {
  let request = '';
  socket.setEncoding('latin1');
  socket.on('error', () => socket.destroy());
  const onData = (chunk) => {
    request += chunk;
    if (!request.includes('\r\n\r\n')) {
      if (request.length > 65536) socket.destroy();
      return;
    }
    socket.off('data', onData);
    const [method, target] = request.slice(0, request.indexOf('\r\n')).split(' ');
    const peer = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const line = `${new Date().toISOString()} ${peer} "${method} ${target}"\n`;
    if (log === '-') process.stdout.write(line);
    else fs.appendFileSync(log, line);
    const body = `${name} saw you as ${peer}\n`;
    const headers = `HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    socket.write(headers, () => socket.end(body));
  };
  socket.on('data', onData);
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
