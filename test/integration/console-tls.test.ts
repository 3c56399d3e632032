/**
 * The web console under TLS and its settings, on one node: with tls_cert/tls_key the console
 * speaks HTTPS only, on 127.0.0.1 by default, and its session cookie is Secure; a wrong token
 * is 401; the login needs the console's own https Origin; one of the two files alone, or
 * a bad console_bind, is refused with a message naming it, and nothing listens.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, berth, berthOk, isRoot, newNode, tempDir } from '../helpers/cli.js';
import { freePort, sleep } from './cluster-twonode.js';

let wd: string;
let port: number;
let cert: string;
let agent: ReturnType<typeof spawn> | undefined;
let admin: string;

function https(path: string, opts: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', ca: readFileSync(cert), servername: 'localhost', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

before(async () => {
  assert.ok(isRoot, 'integration tests run as root');
  const dir = tempDir('berth-console-tls-');
  cert = join(dir, 'c.pem');
  const key = join(dir, 'k.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  port = await freePort();
  wd = newNode('tls1', [`console_port=${port}`, `tls_cert=${cert}`, `tls_key=${key}`]);
  admin = berthOk(['token', 'add', 'role=admin', '--json'], { workdir: wd }).json.token.token;
  agent = spawn(process.execPath, [BIN, 'agent'], { env: { ...process.env, BERTH_WORKDIR: wd }, stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    try { await https('/login'); return; } catch { await sleep(100); }
  }
  assert.fail('the console did not answer over https');
});
after(async () => {
  if (agent && agent.exitCode === null) {
    const done = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await done;
  }
});

describe('console over TLS', () => {
  test('HTTPS only: the login page answers with the CSP; plain HTTP on the same port gets no page', async () => {
    const r = await https('/login');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-security-policy']), /script-src 'self';/);
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/login' }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      req.end();
    });
    assert.ok(!plain.startsWith('status 200'), plain);
  });

  test('a good token gets a Secure, HttpOnly, SameSite=Strict cookie; a wrong one 401; a foreign Origin 403', async () => {
    const origin = `https://127.0.0.1:${port}`;
    const form = (t: string) => `token=${encodeURIComponent(t)}`;
    const h = (o: string) => ({ 'Content-Type': 'application/x-www-form-urlencoded', Origin: o, Host: `127.0.0.1:${port}` });
    const ok = await https('/login', { method: 'POST', body: form(admin), headers: h(origin) });
    assert.equal(ok.status, 303);
    const cookie = String(ok.headers['set-cookie']);
    assert.match(cookie, /^berth_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
    assert.equal((await https('/login', { method: 'POST', body: form('btk_' + 'y'.repeat(43)), headers: h(origin) })).status, 401);
    assert.equal((await https('/login', { method: 'POST', body: form(admin), headers: h(`http://127.0.0.1:${port}`) })).status, 403);
    const page = await https('/', { headers: { Cookie: cookie.split(';')[0]! } });
    assert.equal(page.status, 200);
    assert.match(page.body, /Cluster as node tls1 sees it/);
    // the audit log: readable by root only, one JSON line per login attempt
    const file = join(wd, 'var', 'log', 'audit.log');
    assert.equal(statSync(file).mode & 0o077, 0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.what, l.result]), [['login', 'ok'], ['login', 'refused'], ['login', 'refused']]);
  });

  test('bad console settings are refused with a message naming them; nothing listens', async () => {
    const wd2 = newNode('tls2');
    const p = await freePort();
    const r1 = berth(['initenv', `workdir=${wd2}`, `console_port=${p}`, 'console_bind=localhost']);
    assert.equal(r1.code, 2);
    assert.match(r1.stderr, /bad console_bind="localhost"/);
    berthOk(['initenv', `workdir=${wd2}`, `console_port=${p}`, `tls_cert=${cert}`]);
    const r2 = berth(['agent'], { workdir: wd2, timeoutMs: 30_000 });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /set both tls_cert= and tls_key=/);
  });
});
