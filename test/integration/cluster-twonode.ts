/**
 * Test fixture (not a test file): two berth nodes on this machine sharing ONE GlusterFS volume
 * through two separate FUSE mounts per shared dir. Sub-directories `data`, `system`, `rcconf`,
 * `fstab` and `lease` of the volume are mounted on each node's `jails-data`, `jails-system`,
 * `jails-rcconf`, `jails-fstab` and `jails-lease` (the ownership directory): node1's BEFORE `initenv` (initenv must accept pre-mounted
 * dirs), node2's after it. The two workdirs have different paths (and lengths), so CBSDROOT
 * rewriting is exercised. Each node gets a busybox base and can run its agent
 * (`bin/berth agent`) as a child process on a free loopback port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { AgentClient } from '../../src/nodes/client.js';
import { BIN, berth, berthOk, tempDir } from '../helpers/cli.js';
import { glusterVolume, type GlusterVolume } from '../helpers/gluster.js';

export const SHARED = [['jails-data', 'data'], ['jails-system', 'system'], ['jails-rcconf', 'rcconf'], ['jails-fstab', 'fstab'], ['jails-lease', 'lease']] as const;

/** One node of the fixture. */
export class TestNode {
  agent?: ChildProcess;
  agentLog: string;
  port = 0;
  constructor(readonly name: string, readonly wd: string) {
    this.agentLog = join(wd, '..', `${name}-agent.log`);
  }
  get token(): string { return readFileSync(join(this.wd, 'etc', 'api.token'), 'utf8').trim(); }
  get url(): string { return `http://127.0.0.1:${this.port}`; }
  get socketUrl(): string { return `unix:${join(this.wd, 'var', 'run', 'agent.sock')}`; }
  /** runs `berth ...` on this node */
  run(args: string[], timeoutMs?: number, env?: Record<string, string>) { return berth(args, { workdir: this.wd, timeoutMs, env }); }
  ok(args: string[], timeoutMs?: number) { return berthOk(args, { workdir: this.wd, timeoutMs }); }
  client(): AgentClient { return new AgentClient(this.name, this.url, this.token); }

  /** Spawns `berth agent --api_port <port>` and waits until its API answers (with the token). */
  async startAgent(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const fd = openSync(this.agentLog, 'a');
    try {
      this.agent = spawn(process.execPath, [BIN, 'agent', `--api_port=${this.port}`], {
        env: { ...process.env, BERTH_WORKDIR: this.wd, BERTH_LOG_LEVEL: 'info' }, stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const child = this.agent;
    const end = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent of ${this.name} exited ${child.exitCode}: ${this.logTail()}`);
      try {
        await this.client().list();
        return;
      } catch { /* not yet */ }
      if (Date.now() > end) throw new Error(`agent of ${this.name} did not answer within 30 s: ${this.logTail()}`);
      await sleep(100);
    }
  }

  /** Sends `signal` to the agent and waits for it to exit; returns its exit code (or 128+n). */
  async stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const a = this.agent;
    if (!a) return null;
    this.agent = undefined;
    if (a.exitCode !== null || a.signalCode !== null) return a.exitCode;
    const done = new Promise<number | null>((r) => a.once('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
    a.kill(signal);
    return done;
  }

  logTail(n = 20): string {
    try { return readFileSync(this.agentLog, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
  }

  /** jls --json of this node: jname → env */
  envs(): Record<string, any> {
    const out: Record<string, any> = {};
    for (const e of this.ok(['jls', '--json']).json.envs) out[e.jname] = e;
    return out;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls f every 100 ms until it is true; throws (an assertion) naming `what` after `ms`. */
export async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    if (await f()) return;
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * True once node `n`'s agent has fenced `jname` AND recorded that it stopped the copy: the
 * marker (var/run/fenced/<jname>.json) is rewritten with stopped=true just after the teardown
 * that sets the env Off, so waiting for Off alone races with that write.
 */
export function fencedAndStopped(n: TestNode, jname: string): boolean {
  try {
    return JSON.parse(readFileSync(join(n.wd, 'var', 'run', 'fenced', `${jname}.json`), 'utf8')).stopped === true;
  } catch {
    return false;
  }
}

/** cluster ls --json of a node, the fields every node must agree on, by jname. */
export function view(n: TestNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of n.ok(['cluster', 'ls', '--json']).json.envs) {
    out[e.jname] = { uuid: e.uuid, emulator: e.emulator, registered: e.registered, owner: e.owner, generation: e.generation, state: e.state };
  }
  return out;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The fixture. */
export interface TwoNodes {
  vol: GlusterVolume;
  base: string;
  n1: TestNode;
  n2: TestNode;
  /** stops agents and envs, unmounts, deletes the volume and the temp dirs */
  cleanup(): Promise<void>;
}

/**
 * Makes the two nodes. `initenvArgs` go to both initenv runs (e.g. lease_ttl=3).
 */
export async function twoNodes(initenvArgs: string[] = []): Promise<TwoNodes> {
  const base = tempDir('berth-2n-');
  const vol = await glusterVolume();
  const n1 = new TestNode('node1', join(base, 'n1', 'wd'));
  const n2 = new TestNode('node2', join(base, 'second-node', 'var-lib', 'wd'));
  const fx: TwoNodes = { vol, base, n1, n2, cleanup: () => cleanupNodes(fx) };
  try {
    for (const [, sub] of SHARED) await vol.mkdirOnVolume(sub);
    // node1: shared dirs mounted first, then initenv over them
    for (const [dir, sub] of SHARED) await vol.mount(join(n1.wd, dir), sub);
    berthOk(['initenv', `workdir=${n1.wd}`, 'nodename=node1', ...initenvArgs]);
    // node2: initenv first, then the shared dirs mounted over the empty dirs it made
    berthOk(['initenv', `workdir=${n2.wd}`, 'nodename=node2', ...initenvArgs]);
    for (const [dir, sub] of SHARED) await vol.mount(join(n2.wd, dir), sub);
    for (const n of [n1, n2]) n.ok(['base', 'busybox', 'name=bb']);
  } catch (e) {
    await fx.cleanup().catch(() => undefined);
    throw e;
  }
  return fx;
}

/** Stops every env each node runs (whatever state its inventory is in) and everything else. */
async function cleanupNodes(fx: TwoNodes): Promise<void> {
  for (const n of [fx.n1, fx.n2]) await n.stopAgent('SIGKILL').catch(() => undefined);
  for (const n of [fx.n1, fx.n2]) {
    if (!existsSync(join(n.wd, 'var', 'db', 'local.sqlite'))) continue;
    const r = n.run(['jls', '--json']);
    for (const e of r.json?.envs ?? []) if (e.status !== 'Off') n.run(['jstop', `jname=${e.jname}`]);
    // containers of fenced or half-torn-down envs: kill them through runc directly
    const runcRoot = join(n.wd, 'var', 'run', 'runc');
    if (existsSync(runcRoot)) {
      for (const id of readdirSync(runcRoot)) {
        spawnSync('runc', ['--root', runcRoot, 'kill', '--all', id, 'KILL']);
        spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id]);
      }
    }
    // anything still mounted under jails/ (deepest first)
    const jails = join(n.wd, 'jails');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((t): t is string => !!t && t.startsWith(jails + '/'));
    for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  }
  // what storage hooks mounted per env (the per-env layout), deepest first
  const rest = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((t): t is string => !!t && t.startsWith(fx.base + '/'));
  for (const m of rest.sort((a, b) => b.length - a.length)) if (!/\/(jails-(data|system|rcconf|fstab|lease))$/.test(m)) spawnSync('umount', [m]);
  await fx.vol.remove();
  rmSync(fx.base, { recursive: true, force: true });
}

/**
 * The per-env layout the seed recommends, as `make demo` builds it: two nodes sharing one
 * GlusterFS volume where each env's data, system and fstab dirs are sub-directory mounts made
 * by the example hooks (share/examples/env_start/glusterfs/, the nodes' default_mnt_start /
 * default_mnt_stop), mounted only while in use; only the ownership directory (`lease`) and
 * jails-rcconf (`rcconf`) are mounted whole on both nodes.
 */
export async function perEnvNodes(initenvArgs: string[] = []): Promise<TwoNodes> {
  const base = tempDir('berth-pe-');
  const vol = await glusterVolume();
  const n1 = new TestNode('node1', join(base, 'n1', 'wd'));
  const n2 = new TestNode('node2', join(base, 'second-node', 'var-lib', 'wd'));
  const fx: TwoNodes = { vol, base, n1, n2, cleanup: () => cleanupNodes(fx) };
  try {
    for (const sub of ['data', 'system', 'fstab', 'rcconf', 'lease']) await vol.mkdirOnVolume(sub);
    for (const n of [n1, n2]) {
      const hooks = join(n.wd, 'share', 'examples', 'env_start', 'glusterfs');
      berthOk(['initenv', `workdir=${n.wd}`, `nodename=${n.name}`, `default_mnt_start=${join(hooks, 'env_start_gluster.sh')}`, `default_mnt_stop=${join(hooks, 'env_stop_gluster.sh')}`, ...initenvArgs]);
      const conf = join(hooks, 'env_start_gluster.conf');
      writeFileSync(conf, `GLUSTER_SERVER="${vol.server}"\nGLUSTER_VOLUME="${vol.name}"\nMOUNT_FSTAB=1\nGLUSTER_MOUNT_TIMEOUT=60\nGLUSTER_CREATE_DIRS=1\n`);
      chmodSync(conf, 0o644);
      await vol.mount(join(n.wd, 'jails-rcconf'), 'rcconf');
      await vol.mount(join(n.wd, 'jails-lease'), 'lease');
      n.ok(['base', 'busybox', 'name=bb']);
    }
  } catch (e) {
    await fx.cleanup().catch(() => undefined);
    throw e;
  }
  return fx;
}

/** Gluster sub-directory mounts of the volume under a node's workdir (what its hooks mounted), as "<sub> <dir relative to the workdir>". */
export function hookMounts(n: TestNode): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f.length > 8 && (f[4] ?? '').startsWith(n.wd + '/'))
    .map((f) => { const i = f.indexOf('-'); return { target: f[4]!, fstype: f[i + 1], src: f[i + 2] ?? '' }; })
    .filter((m) => m.fstype === 'fuse.glusterfs' && !/\/(rcconf|lease)$/.test(m.src) && !m.target.startsWith(join(n.wd, 'jails') + '/'))
    .map((m) => `${m.src.replace(/^[^:]*:\/[^/]+\//, '')} ${m.target.slice(n.wd.length + 1)}`).sort();
}

/**
 * A fingerprint of the volume's content as seen on the brick: every path (without .glusterfs)
 * with its size and, for files, its content. `ignore` filters paths (e.g. heartbeat files).
 */
export function brickSnapshot(vol: GlusterVolume, ignore: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const n of readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${n.name}` : n.name;
      if (r === '.glusterfs' || ignore(r)) continue;
      const p = join(dir, n.name);
      if (n.isDirectory()) { out.set(r + '/', 'dir'); walk(p, r); }
      else if (n.isFile()) out.set(r, readFileSync(p).toString('base64'));
      else out.set(r, 'other');
    }
  };
  walk(vol.brick, '');
  return out;
}

/** Bytes used by the brick's files (du -sb without .glusterfs, whose entries are hard links). */
export function brickBytes(vol: GlusterVolume): number {
  const r = spawnSync('du', ['-sb', '--exclude=.glusterfs', vol.brick], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du failed: ${r.stderr}`);
  return Number(r.stdout.split('\t')[0]);
}

/** Makes dirs as needed (test convenience). */
export function mkdirp(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}
