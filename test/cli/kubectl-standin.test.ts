import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { seedKube, standinPath, STANDIN_BIN, tempDir, type CliResult } from '../helpers/cli.js';

// The kubectl stand-in itself (test/bin/kubectl), run directly: the List writes, comma gets,
// multi-name deletes and per-object failure injection that the controller's tests rely on.

const MANAGED = { 'app.kubernetes.io/managed-by': 'k8s-ext-connector' };
const RBAC = 'rbac.authorization.k8s.io/v1';

// A type, not an interface, so that it is a Record<string, unknown> for seedKube.
type Item = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

function serviceAccount(name: string, namespace = 'ns1'): Item {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels: MANAGED } };
}
function role(name: string, namespace = 'ns1'): Item {
  return { apiVersion: RBAC, kind: 'Role', metadata: { name, namespace, labels: MANAGED } };
}
function roleBinding(name: string, namespace = 'ns1'): Item {
  return { apiVersion: RBAC, kind: 'RoleBinding', metadata: { name, namespace, labels: MANAGED } };
}
const list = (items: readonly Item[]): string => `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2)}\n`;

describe('the kubectl stand-in', () => {
  let work: { dir: string; remove: () => void };

  beforeEach(() => {
    work = tempDir('k8s-ext-kubectl-');
    seedKube(work.dir, [{ kind: 'Namespace', metadata: { name: 'ns1' } }]);
  });
  afterEach(() => work.remove());

  async function kubectl(args: readonly string[], input?: string): Promise<CliResult> {
    const result = await run(path.join(STANDIN_BIN, 'kubectl'), args, {
      env: { PATH: standinPath(), KUBE_STANDIN_DIR: work.dir },
      extendEnv: false,
      input,
      reject: false,
      timeoutMs: 20_000,
    });
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }
  /** `kind/name` of the stored objects of a comma get (through the stand-in itself). */
  async function stored(types: string, namespace = 'ns1'): Promise<string[]> {
    const result = await kubectl(['get', types, '-n', namespace, '-o', 'json']);
    expect(result.exitCode).toBe(0);
    return (JSON.parse(result.stdout) as { items: Item[] }).items.map((item) => `${item.kind}/${item.metadata.name}`);
  }

  it('writes every object of a List on stdin in order, one line each, and exits 0', async () => {
    const created = await kubectl(['create', '-f', '-'], list([serviceAccount('sa1'), role('r1'), roleBinding('rb1')]));
    expect(created).toEqual({
      exitCode: 0,
      stdout: 'serviceaccount/sa1 created\nrole.rbac.authorization.k8s.io/r1 created\nrolebinding.rbac.authorization.k8s.io/rb1 created\n',
      stderr: '',
    });
    const replaced = await kubectl(['replace', '-f', '-', '-o', 'name'], list([serviceAccount('sa1'), role('r1')]));
    expect(replaced).toEqual({ exitCode: 0, stdout: 'serviceaccounts/sa1\nroles.rbac.authorization.k8s.io/r1\n', stderr: '' });
    expect(await stored('sa,role,rolebinding')).toEqual(['ServiceAccount/sa1', 'Role/r1', 'RoleBinding/rb1']);
  });

  it.each([
    {
      failure: 'an object that already exists',
      verb: 'create',
      bad: role('r1'),
      stderr: 'Error from server (AlreadyExists): error when creating "STDIN": roles.rbac.authorization.k8s.io "r1" already exists\n',
    },
    {
      failure: 'a replaced object that does not exist',
      verb: 'replace',
      bad: role('r2'),
      stderr: 'Error from server (NotFound): error when replacing "STDIN": roles.rbac.authorization.k8s.io "r2" not found\n',
    },
    {
      failure: 'an object in a missing namespace',
      verb: 'apply',
      bad: roleBinding('rb9', 'nowhere'),
      stderr: 'Error from server (NotFound): error when creating "STDIN": namespaces "nowhere" not found\n',
    },
    {
      failure: 'a kind in a version the server does not have',
      verb: 'create',
      bad: { ...role('r3'), apiVersion: 'v1' },
      stderr: 'error: resource mapping not found for name: "r3" namespace: "ns1" from "STDIN": no matches for kind "Role" in version "v1"\nensure CRDs are installed first\n',
    },
  ])('writes the rest of a List around $failure, names the failing one on stderr and exits 1', async ({ verb, bad, stderr }) => {
    seedKube(work.dir, [role('r1'), ...(verb === 'replace' ? [serviceAccount('sa1'), roleBinding('rb1')] : [])]);
    const result = await kubectl([verb, '-f', '-'], list([serviceAccount('sa1'), bad, roleBinding('rb1')]));
    const done = verb === 'replace' ? 'replaced' : 'created';
    expect(result).toEqual({
      exitCode: 1,
      stdout: `serviceaccount/sa1 ${done}\nrolebinding.rbac.authorization.k8s.io/rb1 ${done}\n`,
      stderr,
    });
    expect(await stored('serviceaccounts,roles,rolebindings')).toEqual(['ServiceAccount/sa1', 'Role/r1', 'RoleBinding/rb1']);
  });

  it('gets several resources separated by commas as one List, each item with its kind and apiVersion', async () => {
    seedKube(work.dir, [
      { kind: 'Namespace', metadata: { name: 'ns2' } },
      { kind: 'ConfigMap', metadata: { name: 'cm1', namespace: 'ns1', labels: MANAGED }, data: {} },
      { kind: 'ConfigMap', metadata: { name: 'theirs', namespace: 'ns1' }, data: {} },
      roleBinding('rb-elsewhere', 'ns2'),
    ]);
    expect((await kubectl(['create', '-f', '-'], list([roleBinding('rb1'), role('r1'), serviceAccount('sa1')]))).exitCode).toBe(0);
    const result = await kubectl([
      'get',
      'configmaps,serviceaccounts,roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io',
      '-n',
      'ns1',
      '-l',
      'app.kubernetes.io/managed-by=k8s-ext-connector',
      '-o',
      'json',
    ]);
    expect(result.exitCode).toBe(0);
    const output = JSON.parse(result.stdout) as { kind: string; items: Item[] };
    expect(output.kind).toBe('List');
    expect(output.items.map((item) => [item.apiVersion, item.kind, item.metadata.namespace, item.metadata.name])).toEqual([
      ['v1', 'ConfigMap', 'ns1', 'cm1'],
      ['v1', 'ServiceAccount', 'ns1', 'sa1'],
      [RBAC, 'Role', 'ns1', 'r1'],
      [RBAC, 'RoleBinding', 'ns1', 'rb1'],
    ]);
    expect(await kubectl(['get', 'sa,nonsense', '-n', 'ns1', '-o', 'json'])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'error: the server doesn\'t have a resource type "nonsense"\n',
    });
  });

  it('deletes several names of a kind, goes on past a missing one and exits 1 for it unless --ignore-not-found', async () => {
    seedKube(work.dir, [role('r1'), role('r2'), role('r3'), role('r4')]);
    expect(await kubectl(['delete', 'role', 'r1', 'gone', 'r2', '-n', 'ns1'])).toEqual({
      exitCode: 1,
      stdout: 'role.rbac.authorization.k8s.io "r1" deleted\nrole.rbac.authorization.k8s.io "r2" deleted\n',
      stderr: 'Error from server (NotFound): roles.rbac.authorization.k8s.io "gone" not found\n',
    });
    expect(await kubectl(['delete', 'roles.rbac.authorization.k8s.io', 'gone', 'r3', 'r4', '-n', 'ns1', '--ignore-not-found', '--wait=false'])).toEqual({
      exitCode: 0,
      stdout: 'role.rbac.authorization.k8s.io "r3" deleted\nrole.rbac.authorization.k8s.io "r4" deleted\n',
      stderr: '',
    });
    expect(await stored('roles')).toEqual([]);
  });

  it('deletes the service accounts, roles and role bindings of a namespace it deletes', async () => {
    seedKube(work.dir, [serviceAccount('sa1'), role('r1'), roleBinding('rb1')]);
    expect(await kubectl(['delete', 'namespace', 'ns1'])).toEqual({ exitCode: 0, stdout: 'namespace "ns1" deleted\n', stderr: '' });
    seedKube(work.dir, [{ kind: 'Namespace', metadata: { name: 'ns1' } }]);
    expect(await stored('sa,role,rolebinding')).toEqual([]);
  });

  it('fails only the objects named in .fail-object, in a List write and in a delete, and exits 1', async () => {
    fs.writeFileSync(path.join(work.dir, '.fail-object'), '^roles/r1$\n^serviceaccounts/sa2$\n');
    const written = await kubectl(['create', '-f', '-'], list([serviceAccount('sa1'), role('r1'), roleBinding('rb1'), serviceAccount('sa2')]));
    expect(written).toEqual({
      exitCode: 1,
      stdout: 'serviceaccount/sa1 created\nrolebinding.rbac.authorization.k8s.io/rb1 created\n',
      stderr:
        'Error from server (InternalError): error when creating "STDIN": roles.rbac.authorization.k8s.io "r1": stand-in failure injected\n' +
        'Error from server (InternalError): error when creating "STDIN": serviceaccounts "sa2": stand-in failure injected\n',
    });
    expect(await stored('sa,roles,rolebindings')).toEqual(['ServiceAccount/sa1', 'RoleBinding/rb1']);

    seedKube(work.dir, [role('r1'), role('r2')]);
    expect(await kubectl(['delete', 'role', 'r1', 'r2', '-n', 'ns1', '--ignore-not-found'])).toEqual({
      exitCode: 1,
      stdout: 'role.rbac.authorization.k8s.io "r2" deleted\n',
      stderr: 'Error from server (InternalError): roles.rbac.authorization.k8s.io "r1": stand-in failure injected\n',
    });
    expect(await stored('roles')).toEqual(['Role/r1']);
  });

  it('still fails a whole call whose argv matches .fail, before writing anything', async () => {
    fs.writeFileSync(path.join(work.dir, '.fail'), '^create -f -$\n');
    expect(await kubectl(['create', '-f', '-'], list([serviceAccount('sa1'), role('r1')]))).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'Unable to connect to the server: stand-in failure injected\n',
    });
    fs.rmSync(path.join(work.dir, '.fail'));
    expect(await stored('sa,roles')).toEqual([]);
  });

  it('get --raw prints a list as the API server does: its kind, items without kind, label selector and namespace applied', async () => {
    await kubectl(['create', '-f', '-'], list([serviceAccount('sa1'), role('r1'), roleBinding('rb1')]));
    seedKube(work.dir, [{ kind: 'Namespace', metadata: { name: 'ns2' } }]);
    await kubectl(['create', '-f', '-'], list([role('r2', 'ns2'), { ...role('r3'), metadata: { name: 'r3', namespace: 'ns1' } }]));
    const raw = async (apiPath: string): Promise<unknown> => {
      const result = await kubectl(['get', '--raw', apiPath]);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout.trim()).not.toContain('\n');
      return JSON.parse(result.stdout);
    };
    // r3 has no label: the selector leaves it out.
    const selected = `/apis/${RBAC}/namespaces/ns1/roles?labelSelector=${encodeURIComponent('app.kubernetes.io/managed-by=k8s-ext-connector')}`;
    expect(await raw(selected)).toMatchObject({ kind: 'RoleList', apiVersion: RBAC, items: [{ metadata: { name: 'r1', namespace: 'ns1' } }] });
    const all = (await raw(`/apis/${RBAC}/roles`)) as { items: Item[] };
    expect(all.items.map((item) => `${item.metadata.namespace}/${item.metadata.name}`)).toEqual(['ns1/r1', 'ns1/r3', 'ns2/r2']);
    expect(all.items.every((item) => item.kind === undefined && item.apiVersion === undefined)).toBe(true);
    expect(await raw('/api/v1/namespaces/ns1/serviceaccounts')).toMatchObject({ kind: 'ServiceAccountList', items: [{ metadata: { name: 'sa1' } }] });
    for (const missing of ['/api/v1/roles', `/apis/${RBAC}/namespaces/ns1/nothing`]) {
      expect(await kubectl(['get', '--raw', missing])).toEqual({
        exitCode: 1,
        stdout: '',
        stderr: 'Error from server (NotFound): the server could not find the requested resource\n',
      });
    }
  });

  it('prints a list of megabytes whole through a pipe (a pipe takes 64 KiB at a time)', async () => {
    const items = Array.from({ length: 2000 }, (_, index) => ({ kind: 'ConfigMap', metadata: { name: `cm${index}`, namespace: 'ns1' }, data: { key: 'x'.repeat(1000) } }));
    seedKube(work.dir, items);
    const result = await kubectl(['get', 'configmaps', '-n', 'ns1', '-o', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.length).toBeGreaterThan(2_000_000);
    expect((JSON.parse(result.stdout) as { items: unknown[] }).items).toHaveLength(2000);
  });
});
