import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lib/exec.js';

/**
 * The lab control plane's keys and certificates, made with openssl for each run: a CA, the API
 * server's serving certificate, client certificates (CN = user name, O = groups, as the API
 * server reads them) and the service-account signing key pair. EC P-256 keys: quick to make.
 */

export interface KeyPair {
  certFile: string;
  keyFile: string;
}

/** Names that go into a certificate subject: no '/', '=', ',' or spaces (they would change its meaning). */
const SUBJECT_VALUE = /^[A-Za-z0-9:._@-]{1,64}$/;

export function checkSubjectValue(value: string, what: string): string {
  if (!SUBJECT_VALUE.test(value)) throw new Error(`${what} ${JSON.stringify(value)}: use 1-64 letters, digits and ':._@-'`);
  return value;
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { timeoutMs: 30_000 });
}

function opensslConfig(file: string, extensions: Record<string, string>): void {
  const lines = ['[req]', 'distinguished_name = dn', '[dn]', '[ext]', ...Object.entries(extensions).map(([key, value]) => `${key} = ${value}`), ''];
  fs.writeFileSync(file, lines.join('\n'), { mode: 0o600 });
}

export class Pki {
  readonly ca: KeyPair;

  private constructor(readonly dir: string) {
    this.ca = { certFile: path.join(dir, 'ca.crt'), keyFile: path.join(dir, 'ca.key') };
  }

  /** A new CA in `dir` (created with mode 0700). */
  static async create(dir: string, days = 365): Promise<Pki> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pki = new Pki(dir);
    const config = path.join(dir, 'ca.cnf');
    opensslConfig(config, {
      basicConstraints: 'critical,CA:TRUE',
      keyUsage: 'critical,keyCertSign,cRLSign,digitalSignature',
      subjectKeyIdentifier: 'hash',
    });
    await openssl([
      'req', '-x509', '-new', '-config', config, '-extensions', 'ext', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', pki.ca.keyFile, '-out', pki.ca.certFile, '-days', String(days), '-subj', '/CN=k8s-ext-connector-lab-ca',
    ]);
    return pki;
  }

  /** Opens an existing CA (made by create) to issue more certificates. */
  static open(dir: string): Pki {
    const pki = new Pki(dir);
    if (!fs.existsSync(pki.ca.keyFile)) throw new Error(`no lab CA in ${dir}`);
    return pki;
  }

  /** A certificate signed by the CA: a client one (CN = user, O = groups) or a server one (with SANs). */
  async issue(
    name: string,
    subject: { commonName: string; organizations?: readonly string[] },
    usage: { client: true } | { server: { ips: readonly string[]; dnsNames: readonly string[] } },
    days = 365,
  ): Promise<KeyPair> {
    const base = path.join(this.dir, checkSubjectValue(name, 'certificate name'));
    const pair = { certFile: `${base}.crt`, keyFile: `${base}.key` };
    const extensions: Record<string, string> = {
      basicConstraints: 'critical,CA:FALSE',
      keyUsage: 'critical,digitalSignature,keyEncipherment',
      extendedKeyUsage: 'client' in usage ? 'clientAuth' : 'serverAuth',
      authorityKeyIdentifier: 'keyid',
    };
    if ('server' in usage) {
      extensions.subjectAltName = [...usage.server.ips.map((ip) => `IP:${ip}`), ...usage.server.dnsNames.map((dns) => `DNS:${dns}`)].join(',');
    }
    const config = `${base}.cnf`;
    opensslConfig(config, extensions);
    const subjectText = [
      `/CN=${checkSubjectValue(subject.commonName, 'user name')}`,
      ...(subject.organizations ?? []).map((group) => `/O=${checkSubjectValue(group, 'group name')}`),
    ].join('');
    await openssl([
      'req', '-x509', '-new', '-config', config, '-extensions', 'ext', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-CA', this.ca.certFile, '-CAkey', this.ca.keyFile, '-set_serial', `0x${randomBytes(12).toString('hex')}`,
      '-keyout', pair.keyFile, '-out', pair.certFile, '-days', String(days), '-subj', subjectText,
    ]);
    fs.rmSync(config);
    return pair;
  }

  /** The service-account token signing key pair (private key PEM, public key PEM). */
  async serviceAccountKeys(): Promise<{ privateKeyFile: string; publicKeyFile: string }> {
    const privateKeyFile = path.join(this.dir, 'sa.key');
    const publicKeyFile = path.join(this.dir, 'sa.pub');
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', privateKeyFile]);
    await openssl(['pkey', '-in', privateKeyFile, '-pubout', '-out', publicKeyFile]);
    return { privateKeyFile, publicKeyFile };
  }
}
