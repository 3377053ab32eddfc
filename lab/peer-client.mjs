// A TCP client for system tests: connects, prints what the server sent, exits 0; exits 1 on any
// error or after the timeout. Usage: node peer-client.mjs HOST PORT [TIMEOUT_MS]
import net from 'node:net';

const [host, port, timeout = '5000'] = process.argv.slice(2);
let reply = '';
const socket = net.connect({ host, port: Number(port) });
socket.setTimeout(Number(timeout), () => {
  process.stderr.write(`timeout connecting to ${host}:${port}\n`);
  process.exit(1);
});
socket.on('data', (chunk) => {
  reply += chunk;
});
socket.on('end', () => {
  process.stdout.write(reply);
  process.exit(0);
});
socket.on('error', (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
