/**
 * The shared ownership directory (`lease_dir`, default `<workdir>/jails-lease`): the one place
 * every node mounts WHOLE, whatever per-env mounts its hooks make, so that every node can find
 * every env, see its owner and generation, and take it over from a dead owner with the hooks
 * the record names (design/product.md "Ownership"; issue #11). Like CBSD's HOWTO mounts
 * `jails-rcconf` whole, but holding what ownership needs:
 *
 * ```
 * <lease_dir>/
 *   envs/<jname>/gen.<N>          the env's generation log (src/ownership/record.ts)
 *   envs/<jname>/rc.conf_<jname>  the env's current descriptor (hooks included), rewritten atomically
 *   nodes/<node>/hb               the node's heartbeat (src/ownership/heartbeat.ts)
 *   nodes/<node>/notices/         notices left by nodes that took an env over from <node> (notices.ts)
 *   nodes/<node>/journal/<V>      <node>'s ownership transitions, one immutable file each (journal.ts)
 *   nodes/<node>/snapshot.<V>     what <node> owned at journal version V (journal.ts)
 *   nodes/<node>/probe.<id>       doctor's marker: is this dir the same on every node?
 * ```
 *
 * A small directory: a few files per env, changed only on transitions, and per node a
 * heartbeat. It can live on a small volume of its own (a replica-3 GlusterFS volume, an NFS
 * export, a CephFS directory) while the envs' data lives on any other storage (docs/ownership.md).
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Paths of the ownership directory, as one node sees it. Pure, apart from {@link Ownership.ensureNode} and the listings. */
export class Ownership {
  /**
   * @param root the ownership directory (absolute)
   * @param node this node's name
   */
  constructor(readonly root: string, readonly node: string) {}

  get envsDir(): string { return join(this.root, 'envs'); }
  get nodesDir(): string { return join(this.root, 'nodes'); }
  /** The record (generation log) directory of an env. */
  envRecord(jname: string): string { return join(this.envsDir, jname); }
  /** The descriptor copy kept in the record. */
  envDescriptor(jname: string): string { return join(this.envsDir, jname, `rc.conf_${jname}`); }
  nodeDir(node: string = this.node): string { return join(this.nodesDir, node); }
  beatFile(node: string = this.node): string { return join(this.nodeDir(node), 'hb'); }
  noticesDir(node: string = this.node): string { return join(this.nodeDir(node), 'notices'); }
  journalDir(node: string = this.node): string { return join(this.nodeDir(node), 'journal'); }
  /** doctor's marker `probe.<id>` (a new name each time: another node's cache never shows an old one) */
  probeFile(node: string, id: string): string { return join(this.nodeDir(node), `probe.${id}`); }

  /** Makes `envs/` and this node's `nodes/<node>/{notices,journal}` (idempotent). */
  async ensureNode(): Promise<void> {
    await mkdir(this.envsDir, { recursive: true });
    await mkdir(this.noticesDir(), { recursive: true });
    await mkdir(this.journalDir(), { recursive: true });
  }

  /** The nodes that have a directory here (ever wrote a heartbeat, a journal or a notice was left for them). */
  async listNodes(): Promise<string[]> {
    return (await readdir(this.nodesDir, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  }

  /** The env names that have a record here (one listing). */
  async listEnvs(): Promise<string[]> {
    return (await readdir(this.envsDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  }
}
