// State shared by the gateway's stand-ins (ip, iptables-save, iptables-restore, sshd, kill):
// network namespaces with their links, addresses, default routes and nat rules, kept as JSON in
// $GW_STANDIN_DIR/state.json so that a later call (and the test) sees what an earlier one did.
// The host namespace is "" and starts with lo and eth0. Every call is appended to $STANDIN_LOG.
import fs from 'node:fs';
import path from 'node:path';

export function record(program, argv, extra = {}) {
  if (!process.env.STANDIN_LOG) return;
  const entry = { program, argv, ...extra };
  if (process.env.STANDIN_NETNS) entry.netns = process.env.STANDIN_NETNS;
  fs.appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify(entry)}\n`);
}

export function die(message, code = 1) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function stateFile() {
  const dir = process.env.GW_STANDIN_DIR;
  if (!dir) die('gateway stand-in: GW_STANDIN_DIR is not set', 2);
  return path.join(dir, 'state.json');
}

export function emptyNamespace() {
  return { links: { lo: { kind: null, mode: null, up: false, addrs: [] } }, routes: [], nat: { chains: [], rules: [] } };
}

export function loadState() {
  const file = stateFile();
  if (!fs.existsSync(file)) {
    const host = emptyNamespace();
    host.links.lo.up = true;
    host.links.eth0 = { kind: null, mode: null, up: true, addrs: [] };
    return { namespaces: { '': host } };
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function saveState(state) {
  const file = stateFile();
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

export function currentNamespace(state) {
  const name = process.env.STANDIN_NETNS ?? '';
  const ns = state.namespaces[name];
  if (!ns) die(`Cannot open network namespace "${name}": No such file or directory`);
  return ns;
}
