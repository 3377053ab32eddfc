// A tiny HTTP client for the lab (curl stand-in): prints the body, exits 1 on error or timeout.
// Usage: node http-get.mjs URL [TIMEOUT_MS]
import http from 'node:http';

const [url, timeout = '5000'] = process.argv.slice(2);
const request = http.get(url, { agent: false, timeout: Number(timeout) }, (response) => {
  let body = '';
  response.setEncoding('utf8');
  response.on('data', (chunk) => (body += chunk));
  response.on('end', () => {
    process.stdout.write(body);
    process.exit(response.statusCode === 200 ? 0 : 1);
  });
});
request.on('timeout', () => {
  process.stderr.write(`timeout: ${url}\n`);
  request.destroy();
  process.exit(1);
});
request.on('error', (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
