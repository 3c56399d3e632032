/**
 * The web console's login tokens (src/tokens.ts), sessions, CSRF and Origin checks
 * (src/agent/console/auth.ts) and its HTML escaping (src/agent/console/html.ts).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Inventory } from '../../src/inventory.js';
import { BerthError, EXIT } from '../../src/errors.js';
import { addToken, findToken, hashToken, listTokens, removeToken } from '../../src/tokens.js';
import { cookieValue, originAllowed, refuseChange, secretEquals, SESSION_IDLE_SEC, sessionCookie, Sessions } from '../../src/agent/console/auth.js';
import { esc, html } from '../../src/agent/console/html.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-console-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const inv = Inventory.open(join(dir, 'inv.sqlite'), { create: true });
after(() => inv.db.close());

describe('console tokens', () => {
  test('a token is shown once and only its SHA-256 is stored; it is found again by its secret', () => {
    const t = addToken(inv, { role: 'admin', comment: 'ops' });
    assert.match(t.token, /^btk_[A-Za-z0-9_-]{43}$/);
    assert.match(t.id, /^[0-9a-f]{8}$/);
    const dump = JSON.stringify(inv.db.prepare('SELECT * FROM console_tokens').all());
    assert.ok(!dump.includes(t.token.slice(4)), 'the secret is not in the inventory');
    assert.ok(dump.includes(hashToken(t.token)));
    assert.deepEqual(findToken(inv, t.token), { id: t.id, role: 'admin', comment: 'ops', createdAt: t.createdAt });
    assert.equal(findToken(inv, t.token.slice(0, -1) + (t.token.endsWith('A') ? 'B' : 'A')), undefined);
    assert.equal(findToken(inv, ''), undefined);
    assert.equal(findToken(inv, 'not a token'), undefined);
    assert.ok(listTokens(inv).some((x) => x.id === t.id && x.role === 'admin' && !('token' in x)));
  });

  test('a bad role is refused (exit 2) and nothing is stored', () => {
    const before = listTokens(inv).length;
    for (const role of [undefined, '', 'root', 'Admin']) {
      assert.throws(() => addToken(inv, { role }), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_ROLE' && e.exitCode === EXIT.USAGE);
    }
    assert.throws(() => addToken(inv, { role: 'viewer', comment: 'a\nb' }), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_VALUE');
    assert.equal(listTokens(inv).length, before);
  });

  test('remove: the token no longer logs in; an unknown id is exit 3, a malformed one exit 2', () => {
    const t = addToken(inv, { role: 'viewer' });
    assert.deepEqual(removeToken(inv, t.id), { id: t.id });
    assert.equal(findToken(inv, t.token), undefined);
    assert.throws(() => removeToken(inv, t.id), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_SUCH_TOKEN' && e.exitCode === EXIT.NOT_FOUND);
    assert.throws(() => removeToken(inv, '../x'), (e: unknown) => e instanceof BerthError && e.exitCode === EXIT.USAGE);
  });
});

describe('console sessions', () => {
  test('a session has its own random id and CSRF token; it ends when idle too long or when its token is gone', () => {
    let now = 1_000_000;
    const s = new Sessions(() => now);
    const a = s.create('aaaaaaaa', 'admin');
    const b = s.create('bbbbbbbb', 'viewer');
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.csrf, b.csrf);
    assert.notEqual(a.id, a.csrf);
    const roles: Record<string, 'admin' | 'viewer'> = { aaaaaaaa: 'admin', bbbbbbbb: 'viewer' };
    const role = (id: string) => roles[id];
    assert.equal(s.get(a.id, role)?.tokenId, 'aaaaaaaa');
    assert.equal(s.get('x'.repeat(43), role), undefined);
    assert.equal(s.get(undefined, role), undefined);
    delete roles.bbbbbbbb;
    assert.equal(s.get(b.id, role), undefined, 'a removed token ends its session');
    now += SESSION_IDLE_SEC * 1000 + 1;
    assert.equal(s.get(a.id, role), undefined, 'idle too long');
    assert.equal(s.size, 0);
  });

  test('the cookie is HttpOnly, SameSite=Strict, Secure only under TLS; it is read back from a Cookie header', () => {
    assert.equal(sessionCookie('abc', false), 'berth_session=abc; Path=/; HttpOnly; SameSite=Strict');
    assert.equal(sessionCookie('abc', true), 'berth_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure');
    assert.match(sessionCookie('', true), /Max-Age=0/);
    assert.equal(cookieValue('a=1; berth_session=xyz; b=2', 'berth_session'), 'xyz');
    assert.equal(cookieValue('berth_sessionx=1', 'berth_session'), undefined);
    assert.equal(cookieValue(undefined, 'berth_session'), undefined);
  });

  test('a state change needs a session, the console\'s Origin, the session\'s CSRF token and the admin role', () => {
    const s = new Sessions();
    const admin = s.create('aaaaaaaa', 'admin');
    const viewer = s.create('bbbbbbbb', 'viewer');
    const host = '127.0.0.1:8080';
    const o = 'http://127.0.0.1:8080';
    assert.equal(refuseChange(admin, admin.csrf, o, host, false), undefined);
    assert.match(refuseChange(undefined, admin.csrf, o, host, false)!, /not logged in/);
    assert.match(refuseChange(admin, undefined, o, host, false)!, /CSRF/);
    assert.match(refuseChange(admin, viewer.csrf, o, host, false)!, /CSRF/, 'another session\'s CSRF token');
    assert.match(refuseChange(admin, admin.csrf, 'http://evil.example', host, false)!, /Origin/);
    assert.match(refuseChange(admin, admin.csrf, undefined, host, false)!, /Origin/);
    assert.match(refuseChange(admin, admin.csrf, o, host, true)!, /Origin/, 'http origin on a TLS console');
    assert.match(refuseChange(viewer, viewer.csrf, o, host, false)!, /viewer may not act/);
    assert.equal(refuseChange(viewer, viewer.csrf, o, host, false, false), undefined, 'log out needs no admin');
    assert.equal(originAllowed('https://h:1', 'h:1', true), true);
    assert.equal(secretEquals('a', 'a'), true);
    assert.equal(secretEquals('', ''), false);
    assert.equal(secretEquals('a', 'ab'), false);
  });
});

describe('console html', () => {
  test('every interpolated value is escaped; Html and arrays are kept', () => {
    assert.equal(esc(`<script>"'&\``), '&#60;script&#62;&#34;&#39;&#38;&#96;');
    const evil = '<img src=x onerror=alert(1)>';
    const out = html`<td title="${evil}">${evil}${[html`<b>${evil}</b>`]}</td>`.s;
    assert.ok(!out.includes('<img'), out);
    assert.ok(out.includes('<b>&#60;img'), out);
  });
});
