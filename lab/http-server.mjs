// A small HTTP server for the lab: logs one line per request with the client address it saw,
// like `python -m SimpleHTTPServer` in the original README, and answers with that address.
// Usage: node http-server.mjs HOST PORT LOG NAME
import fs from 'node:fs';
import http from 'node:http';

const [host, port, log, name] = process.argv.slice(2);
const server = http.createServer((request, response) => {
  const peer = (request.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  fs.appendFileSync(log, `${new Date().toISOString()} ${peer} "${request.method} ${request.url}"\n`);
  response.setHeader('content-type', 'text/plain');
  response.end(`${name} saw you as ${peer}\n`);
});
server.keepAliveTimeout = 0;
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
