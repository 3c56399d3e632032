/**
 * Workdir layout of design/product.md "Workdir layout" (CBSD's cbsd.conf path variables,
 * cbsd-behaviour.md §1). Pure functions of the workdir path; nothing here touches disk.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Default workdir: /usr/jails on FreeBSD, /var/lib/berth on Linux. */
export function defaultWorkdir(platform: NodeJS.Platform = process.platform): string {
  return platform === 'freebsd' ? '/usr/jails' : '/var/lib/berth';
}

/**
 * Resolves the workdir: the `workdir=` argument, else `BERTH_WORKDIR`, else the default.
 */
export function resolveWorkdir(arg?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(arg || env.BERTH_WORKDIR || defaultWorkdir());
}

/** Per-env locations (CBSD names: path, data, sysdir, fstab dir, rcconf). */
export interface EnvPaths {
  /** runtime root mount point: jails/<jname> */
  path: string;
  /** data: jails-data/<jname>-data, or the env's own data= dir (Workdir.env) */
  data: string;
  /** system dir: jails-system/<jname> */
  sysdir: string;
  /** fstab dir: jails-fstab/<jname> */
  fstabDir: string;
  /** jails-fstab/<jname>/fstab */
  fstab: string;
  /** jails-fstab/<jname>/fstab.local */
  fstabLocal: string;
  /** the descriptor copy kept with the env: jails-system/<jname>/rc.conf_<jname> */
  descriptor: string;
  /** the unregistered descriptor: jails-rcconf/rc.conf_<jname> */
  rcconfFile: string;
  /** the ownership record, a directory holding the generation log: <lease_dir>/envs/<jname> (src/ownership/record.ts) */
  lease: string;
  /** the descriptor copy in the ownership record: <lease_dir>/envs/<jname>/rc.conf_<jname> */
  recordDescriptor: string;
  /** where berth 0.1 kept the lease: jails-system/<jname>/lease (src/ownership/legacy.ts) */
  legacyLease: string;
  /** the node-local env log: var/log/<jname>.log */
  log: string;
  /** the OCI bundle dir (runc): var/run/bundles/<jname> */
  bundle: string;
}

/** All paths of one workdir. */
export class Workdir {
  readonly root: string;
  /** the shared ownership directory: the lease_dir setting, else <workdir>/jails-lease */
  readonly leaseDir: string;
  /**
   * @param root the workdir
   * @param leaseDir the `lease_dir` setting (etc/berth.conf), absolute; default `<root>/jails-lease`
   */
  constructor(root: string, leaseDir?: string) {
    this.root = resolve(root);
    this.leaseDir = leaseDir ? resolve(leaseDir) : join(this.root, 'jails-lease');
  }
  get nodenameFile(): string { return join(this.root, 'nodename'); }
  get etc(): string { return join(this.root, 'etc'); }
  get conf(): string { return join(this.root, 'etc', 'berth.conf'); }
  get apiToken(): string { return join(this.root, 'etc', 'api.token'); }
  get bases(): string { return join(this.root, 'bases'); }
  get jails(): string { return join(this.root, 'jails'); }
  get jailsData(): string { return join(this.root, 'jails-data'); }
  get jailsSystem(): string { return join(this.root, 'jails-system'); }
  get jailsRcconf(): string { return join(this.root, 'jails-rcconf'); }
  get jailsFstab(): string { return join(this.root, 'jails-fstab'); }
  /** the default ownership directory (see {@link Workdir.leaseDir}) */
  get jailsLease(): string { return join(this.root, 'jails-lease'); }
  get varDb(): string { return join(this.root, 'var', 'db'); }
  get dbFile(): string { return join(this.root, 'var', 'db', 'local.sqlite'); }
  get logDir(): string { return join(this.root, 'var', 'log'); }
  get runDir(): string { return join(this.root, 'var', 'run'); }
  /** runc state dir, per node so two nodes on one host never collide. */
  get runcRoot(): string { return join(this.root, 'var', 'run', 'runc'); }
  get agentSocket(): string { return join(this.root, 'var', 'run', 'agent.sock'); }
  get share(): string { return join(this.root, 'share'); }
  /** The dirs initenv creates, in creation order. */
  get layoutDirs(): string[] {
    return [this.root, this.etc, this.bases, this.jails, this.jailsData, this.jailsSystem, this.jailsRcconf,
      this.jailsFstab, this.jailsLease, join(this.root, 'var'), this.varDb, this.logDir, this.runDir, this.share];
  }
  base(name: string): string { return join(this.bases, name); }
  /** The descriptors waiting in jails-rcconf/ for a jregister (`rc.conf_<jname>`), by jname. */
  waitingDescriptors(): { jname: string; file: string }[] {
    if (!existsSync(this.jailsRcconf)) return [];
    return readdirSync(this.jailsRcconf).sort()
      .map((f) => ({ jname: /^rc\.conf_(.+)$/.exec(f)?.[1] ?? '', file: join(this.jailsRcconf, f) }))
      .filter((d) => d.jname !== '');
  }
  /**
   * The paths of env `jname`. `data`: the env's `data=` setting when it names a directory of its
   * own (an absolute path, honoured as written as CBSD does, cbsd-behaviour.md §4.3; jregister
   * checks it exists); anything else means the layout's jails-data/<jname>-data.
   */
  env(jname: string, data?: string): EnvPaths {
    const sysdir = join(this.jailsSystem, jname);
    const fstabDir = join(this.jailsFstab, jname);
    return {
      path: join(this.jails, jname),
      data: data && data.startsWith('/') ? resolve(data) : join(this.jailsData, `${jname}-data`),
      sysdir,
      fstabDir,
      fstab: join(fstabDir, 'fstab'),
      fstabLocal: join(fstabDir, 'fstab.local'),
      descriptor: join(sysdir, `rc.conf_${jname}`),
      rcconfFile: join(this.jailsRcconf, `rc.conf_${jname}`),
      lease: join(this.leaseDir, 'envs', jname),
      recordDescriptor: join(this.leaseDir, 'envs', jname, `rc.conf_${jname}`),
      legacyLease: join(sysdir, 'lease'),
      log: join(this.logDir, `${jname}.log`),
      bundle: join(this.runDir, 'bundles', jname),
    };
  }
}
