/**
 * `doctor`'s checks of this node's access to Ceph RBD (src/storage/rbd.ts), run when an env has
 * an RBD disk (`dsk_typeN=rbd`) or berth.conf has rbd_* settings: the node's settings parse, its
 * ceph.conf and keyring are readable, each pool answers (`rbd ls -p <pool>`, killed after a
 * timeout: a monitor that does not answer makes rbd wait minutes), and qemu has its rbd block
 * driver.
 *
 * The driver: `qemu-img --help` is no proof, it names every block module QEMU was built with,
 * installed or not (Debian ships block-rbd in qemu-block-extra). So qemu-img is asked to open an
 * RBD image with a ceph.conf that does not exist: with the driver loaded, block/rbd.c answers
 * `error reading conf file ...` (nothing is contacted); without it, qemu-img says
 * `Unknown driver 'rbd'`.
 */
import { accessSync, constants as FS } from 'node:fs';
import { BerthError } from '../errors.js';
import type { KV } from '../kvfile.js';
import { run } from '../proc.js';
import { rbdAccessArgs, rbdAccessFromSettings, type RbdAccess } from './rbd.js';

/** One row of doctor's report (the shape of src/doctor.ts DoctorCheck). */
export interface RbdCheckRow {
  check: 'rbd';
  subject: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  data?: Record<string, unknown>;
}

/** Options of {@link checkRbd}. */
export interface RbdCheckOptions {
  /** seconds `rbd ls` may take before it is killed and the pool reported as not answering (default 10) */
  timeoutSec?: number;
  /** the ceph.conf rbd and QEMU read when the settings name none and give no monitors */
  defaultConf?: string;
}

/** The ceph.conf rbd and QEMU read when none is given. */
export const DEFAULT_CEPH_CONF = '/etc/ceph/ceph.conf';

/** The last line of a command's stderr that says something (librados log lines dropped when an `rbd:` line is there). */
function lastLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.filter((l) => l.startsWith('rbd:') || l.startsWith('qemu-img:')).pop() ?? lines.pop() ?? '';
}

function readable(path: string): string | undefined {
  try {
    accessSync(path, FS.R_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

/**
 * Does qemu have its rbd block driver? (see the module comment)
 * @returns ok with qemu-img's answer, or a warning naming what is wrong (qemu-img missing, the
 *   driver missing: install qemu-block-extra)
 */
export async function checkQemuRbdDriver(): Promise<RbdCheckRow> {
  const subject = 'qemu rbd driver';
  const probe = '/nonexistent/berth-doctor-probe.conf';
  let r;
  try {
    r = await run(['qemu-img', 'info', '--image-opts', `driver=rbd,pool=rbd,image=berth-doctor-probe,conf=${probe}`], { check: false, timeoutSec: 20 });
  } catch (e) {
    return { check: 'rbd', subject, status: 'warn', detail: `qemu-img cannot be run (${(e as Error).message}): VMs cannot open RBD disks; install qemu-utils and qemu-block-extra` };
  }
  const said = lastLine(r.stderr);
  if (/error reading conf file/.test(r.stderr)) return { check: 'rbd', subject, status: 'ok', detail: 'qemu-img opens rbd: images (the rbd block driver is loaded)' };
  if (/Unknown driver|Unknown protocol|not supported|Failed to open module/i.test(r.stderr)) {
    return { check: 'rbd', subject, status: 'warn', detail: `qemu has no rbd block driver (${said}): VMs cannot open RBD disks; install qemu-block-extra`, data: { stderr: said } };
  }
  return { check: 'rbd', subject, status: 'warn', detail: `cannot tell whether qemu has its rbd driver: qemu-img said ${JSON.stringify(said || `exit ${r.exitCode}`)}`, data: { stderr: said } };
}

/**
 * Checks the node's RBD access for `pools` (the pools of the envs' RBD disks; `rbd` when none).
 * @param settings the node's berth.conf (its rbd_* keys)
 * @returns one row each: settings, ceph.conf, keyring, each pool, qemu's driver; a warning row
 *   names what is wrong (unreadable file, the rbd error or the timeout, the missing driver)
 */
export async function checkRbd(settings: KV, pools: string[], opts: RbdCheckOptions = {}): Promise<RbdCheckRow[]> {
  const rows: RbdCheckRow[] = [];
  let a: RbdAccess;
  try {
    a = rbdAccessFromSettings(settings);
  } catch (e) {
    rows.push({ check: 'rbd', subject: 'berth.conf rbd_*', status: 'fail', detail: e instanceof BerthError ? e.message : String(e) });
    rows.push(await checkQemuRbdDriver());
    return rows;
  }
  const conf = a.conf ?? (a.monitors ? undefined : opts.defaultConf ?? DEFAULT_CEPH_CONF);
  if (conf && conf !== '/dev/null') {
    const err = readable(conf);
    rows.push(err
      ? { check: 'rbd', subject: conf, status: 'warn', detail: `the ceph.conf ${a.conf ? 'of rbd_conf' : 'rbd reads by default'} cannot be read (${err}): rbd and QEMU cannot find the cluster${a.conf ? '' : '; set rbd_conf or rbd_mon_host in berth.conf'}`, data: { error: err } }
      : { check: 'rbd', subject: conf, status: 'ok', detail: `ceph.conf readable${a.conf ? ' (rbd_conf)' : ' (the default)'}` });
  }
  if (a.keyring) {
    const err = readable(a.keyring);
    rows.push(err
      ? { check: 'rbd', subject: a.keyring, status: 'warn', detail: `the keyring of rbd_keyring cannot be read (${err}): the cluster will refuse client.${a.id ?? 'admin'}`, data: { error: err } }
      : { check: 'rbd', subject: a.keyring, status: 'ok', detail: `keyring readable (client.${a.id ?? 'admin'})` });
  }
  const timeoutSec = opts.timeoutSec ?? 10;
  for (const pool of [...new Set(pools.length ? pools : ['rbd'])].sort()) {
    const subject = `pool ${pool}`;
    const noAnswer: RbdCheckRow = { check: 'rbd', subject, status: 'warn', detail: `rbd ls -p ${pool} did not answer within ${timeoutSec} s: are the monitors (${a.monitors ?? `of ${conf ?? 'the ceph.conf'}`}) up and reachable?`, data: { timeoutSec } };
    const t0 = performance.now();
    let r;
    try {
      r = await run(['rbd', ...rbdAccessArgs(a), 'ls', '-p', pool], { check: false, timeoutSec });
    } catch (e) {
      // the timeout aborts the process: run() throws E_EXEC then
      rows.push(performance.now() - t0 >= timeoutSec * 1000 - 50 ? noAnswer : { check: 'rbd', subject, status: 'warn', detail: `rbd cannot be run (${(e as Error).message}): install ceph-common` });
      continue;
    }
    if (r.exitCode === 0) {
      const n = r.stdout.split('\n').filter(Boolean).length;
      rows.push({ check: 'rbd', subject, status: 'ok', detail: `answers as client.${a.id ?? 'admin'} (${n} image${n === 1 ? '' : 's'}, ${Math.round(r.durationMs)} ms)`, data: { images: n, ms: r.durationMs } });
    } else if (r.signal || r.durationMs >= timeoutSec * 1000 - 50) {
      rows.push(noAnswer);
    } else {
      rows.push({ check: 'rbd', subject, status: 'warn', detail: `rbd ls -p ${pool} failed as client.${a.id ?? 'admin'}: ${lastLine(r.stderr) || `exit ${r.exitCode}`}`, data: { exitCode: r.exitCode } });
    }
  }
  rows.push(await checkQemuRbdDriver());
  return rows;
}
