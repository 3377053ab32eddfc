// Sends an HTTP GET every INTERVAL_MS (without waiting for the previous one, each with its own
// timeout) until stopped, and appends one JSON line per request to LOG:
//   {"startedMs":..., "endedMs":..., "ok":true, "body":"..."}  or  {..., "ok":false, "error":"..."}
// Times are ms since the epoch. Usage: node http-probe.mjs URL INTERVAL_MS TIMEOUT_MS LOG
import fs from 'node:fs';
import http from 'node:http';
import { setInterval } from 'node:timers';

const [url, interval, timeout, log] = process.argv.slice(2);

function probe() {
  const startedMs = Date.now();
  let done = false;
  const finish = (result) => {
    if (done) return;
    done = true;
    fs.appendFileSync(log, `${JSON.stringify({ startedMs, endedMs: Date.now(), ...result })}\n`);
  };
  const request = http.get(url, { agent: false, timeout: Number(timeout) }, (response) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => finish(response.statusCode === 200 ? { ok: true, body: body.trim() } : { ok: false, error: `HTTP ${response.statusCode}` }));
    response.on('error', (error) => finish({ ok: false, error: error.message }));
  });
  request.on('timeout', () => {
    finish({ ok: false, error: 'timeout' });
    request.destroy();
  });
  request.on('error', (error) => finish({ ok: false, error: error.message }));
}

fs.writeFileSync(log, '');
process.stdout.write('probing\n');
probe();
setInterval(probe, Number(interval));
process.on('SIGTERM', () => process.exit(0));
