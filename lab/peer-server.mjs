// A TCP server for system tests: answers each connection with the peer address it saw, then
// closes it, and appends that address to a log file. Usage: node peer-server.mjs HOST PORT LOG
import fs from 'node:fs';
import net from 'node:net';

const [host, port, log] = process.argv.slice(2);
const server = net.createServer((socket) => {
  const peer = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  fs.appendFileSync(log, `${peer}\n`);
  socket.end(`${peer}\n`);
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
