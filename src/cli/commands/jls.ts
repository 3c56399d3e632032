/** `berth jls [jname=<glob>] [display=cols] [header=0]`: list envs with CBSD's columns. */
import type { EnvInfo } from '../../lifecycle/types.js';
import { familyOf, withNode } from '../args.js';
import { JNAME, o } from '../options.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

/** jls columns: CBSD's default, `display=` picks others (any descriptor key too). */
const DEFAULT_COLUMNS = ['jname', 'jid', 'ip4_addr', 'host_hostname', 'path', 'status'];
/** bls columns: CBSD's bls JNAME JID VM_RAM VM_CPUS VM_OS_TYPE STATUS (JID: the qemu pid), plus the emulator. */
const VM_COLUMNS = ['jname', 'jid', 'vm_ram', 'vm_cpus', 'vm_os_type', 'emulator', 'status'];

function column(e: EnvInfo, c: string, vnc: Map<string, string>): string | number {
  switch (c) {
    case 'vnc': return vnc.get(e.jname) ?? '';
    case 'jname': return e.jname;
    case 'jid': return e.jid;
    case 'status': return e.status;
    case 'uuid': return e.uuid;
    case 'emulator': return e.emulator;
    case 'generation': return e.generation;
    case 'path': return e.conf.baserw === '1' ? (e.conf.data ?? '') : (e.conf.path ?? '');
    case 'ip4_addr': return (e.conf.ip4_addr ?? '').replace(/(^|,)[^,#]*#/g, '$1');
    default: return e.conf[c] ?? '';
  }
}

export const command: CmdDef = {
  name: 'jls', summary: 'list envs (CBSD columns JNAME JID IP4_ADDR HOST_HOSTNAME PATH STATUS)',
  options: [JNAME, o('display', 'comma list of columns'), o('header', '0 hides the header', '0|1')], positional: '[jname...]',
  help: "--json gives each env's jname, jid, status, uuid, emulator, generation and the settings of the default columns (berth jget shows all of an env's settings).\nbls display=...,vnc shows where a running VM's VNC server listens (127.0.0.1:<port>, the port chosen at start for vm_vnc_port=0); with --json each such VM gets vnc: {host, port}.\nStatus words (CBSD): On, Off, Maintenance (starting, stopping or being torn down), Unregister (a descriptor in jails-rcconf/ waiting for jregister).",
  async handler(opts, args) {
    const { watchIfNeeded } = await import('../../lifecycle/run-monitor.js');
    const { listEnvs, listEnvsJson } = await import('../../lifecycle/list.js');
    const { SUMMARY_KEYS } = await import('../../inventory.js');
    const { ENGINE_MODULES } = await import('../../engines/registry.js');
    // jls lists jails and containers (family j), bls VMs (family b)
    const family = familyOf(opts);
    const emulators = ENGINE_MODULES.filter((m) => m.info.family === family).map((m) => m.info.name);
    return withNode(opts, async (ctx) => {
      // an env that ended while the node's run monitor was dead (killed) gets its teardown now
      watchIfNeeded(ctx);
      const patterns = [...(typeof opts.jname === 'string' ? [opts.jname] : []), ...args];
      const cols = typeof opts.display === 'string' ? opts.display.split(',').map((s) => s.trim()).filter(Boolean) : family === 'b' ? VM_COLUMNS : DEFAULT_COLUMNS;
      // the default columns come from the summary (fast for thousands of envs); other display= keys need the whole conf
      const summary = cols.every((c) => ['jname', 'jid', 'status', 'uuid', 'emulator', 'generation', ...SUMMARY_KEYS].includes(c));
      if (opts.json && summary) {
        // serialised by SQLite: no object per env (10,000 envs, bench/lifecycle.ts (c))
        const envs = await listEnvsJson(ctx, { patterns, unregistered: true, emulators });
        return { data: {}, json: `{"ok":true,"node":${JSON.stringify(ctx.nodename)},"envs":${envs}}` };
      }
      const envs = await listEnvs(ctx, { patterns, unregistered: true, summary, emulators });
      // display=vnc: asked of each running VM's engine (qemu: QMP query-vnc)
      const vnc = new Map<string, string>();
      if (cols.includes('vnc')) {
        const { engineEnv } = await import('../../engines/types.js');
        for (const e of envs.filter((x) => x.status === 'On')) {
          const engine = await ctx.engine(e.emulator);
          const row = ctx.inv.get(e.jname);
          const ep = row && engine.screen ? await engine.screen(engineEnv(ctx, e.jname, row.conf)).catch(() => undefined) : undefined;
          if (ep) { vnc.set(e.jname, `${ep.host}:${ep.port}`); Object.assign(e, { vnc: { host: ep.host, port: ep.port } }); }
        }
      }
      if (opts.json) return { data: { node: ctx.nodename, envs } };
      return { data: {}, text: renderTable(cols, envs.map((e) => cols.map((c) => column(e, c, vnc))), opts.header !== '0') };
    });
  },
};
