// Bench helper: connects, reads until the server closes, prints "BYTES MS" (exit 1 on error).
// Usage: node byte-client.mjs HOST PORT
import net from 'node:net';

const [host, port] = process.argv.slice(2);
const started = process.hrtime.bigint();
let bytes = 0;
const socket = net.connect({ host, port: Number(port) });
socket.on('data', (chunk) => (bytes += chunk.length));
socket.on('end', () => {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(`${bytes} ${ms.toFixed(1)}\n`);
  process.exit(0);
});
socket.on('error', (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
