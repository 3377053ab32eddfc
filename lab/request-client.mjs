// Bench helper: COUNT sequential HTTP/1.0 GETs to HOST:PORT, each on a new connection, as a
// client of a database or a web service would make them. Prints one JSON line: the time of each
// request in ms (connect to the server's close), in order. Exits 1 on any failed request.
// Usage: node request-client.mjs HOST PORT COUNT [TIMEOUT_MS]
import net from 'node:net';

const [host, port, count, timeout = '5000'] = process.argv.slice(2);

function request() {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let reply = '';
    const socket = net.connect({ host, port: Number(port) }, () => socket.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    socket.setEncoding('latin1');
    socket.setTimeout(Number(timeout), () => socket.destroy(new Error(`no reply within ${timeout} ms`)));
    socket.on('data', (chunk) => (reply += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (!reply.startsWith('HTTP/1.0 200 ')) reject(new Error(`unexpected reply: ${JSON.stringify(reply.slice(0, 80))}`));
      else resolve(ms);
    });
  });
}

const times = [];
try {
  for (let index = 0; index < Number(count); index++) times.push(Math.round((await request()) * 1000) / 1000);
} catch (error) {
  process.stderr.write(`request ${times.length + 1} to ${host}:${port} failed: ${error.message}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify(times)}\n`);
