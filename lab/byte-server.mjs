// Bench helper: a TCP server that sends BYTES bytes to each client, then closes.
// Usage: node byte-server.mjs HOST PORT BYTES
import { Buffer } from 'node:buffer';
import net from 'node:net';

const [host, port, total] = process.argv.slice(2);
const chunk = Buffer.alloc(256 * 1024, 0x61);
const server = net.createServer((socket) => {
  let left = Number(total);
  const pump = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!socket.write(piece)) return socket.once('drain', pump);
    }
    socket.end();
  };
  socket.on('error', () => socket.destroy());
  pump();
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
