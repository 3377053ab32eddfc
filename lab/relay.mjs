// A TCP relay for the lab: accepts connections on LISTEN and pipes each to TARGET, where each is
// HOST:PORT or unix:PATH. Two of them, one in a network namespace and one outside, joined by a
// unix socket (a file, which every network namespace sees), carry TCP from one namespace to
// another without an address in either. Prints "listening" once it accepts connections.
// Usage: node relay.mjs LISTEN TARGET
import fs from 'node:fs';
import net from 'node:net';

const parse = (text) => {
  if (text.startsWith('unix:')) return { path: text.slice(5) };
  const colon = text.lastIndexOf(':');
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
};
const [listen, target] = process.argv.slice(2).map(parse);
if (listen.path) fs.rmSync(listen.path, { force: true });
const server = net.createServer((client) => {
  const upstream = net.connect(target);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const socket of [client, upstream]) {
    socket.on('error', end);
    socket.on('close', end);
  }
});
server.listen(listen.path ?? { host: listen.host, port: listen.port }, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
