/** `berth agent`: runs the node agent in the foreground (src/agent/daemon.ts) until SIGTERM/SIGINT. */
import { usageError } from '../../errors.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'agent', summary: 'run the node agent in the foreground (leases, fencing, reconcile, autostart, API)',
  options: [o('api_port', 'also listen on 127.0.0.1:<port>')],
  async handler(opts, _args, io) {
    // the agent logs its work (renewals failing, fencing, API requests) at info level by default
    process.env.BERTH_LOG_LEVEL ||= 'info';
    let apiPort: number | undefined;
    if (typeof opts.api_port === 'string') {
      if (!/^\d{1,5}$/.test(opts.api_port) || Number(opts.api_port) > 65535) {
        throw usageError('E_BAD_VALUE', `bad api_port=${JSON.stringify(opts.api_port)}: expected 0 (unix socket only) or a TCP port 1-65535`);
      }
      apiPort = Number(opts.api_port);
    }
    const { runAgent } = await import('../../agent/daemon.js');
    const ep = await runAgent({ workdir: opts.workdir, apiPort }, (e) =>
      io.note(`berth agent: serving ${e.socket}${e.port ? ` and http://127.0.0.1:${e.port}` : ''}${e.console ? `; web console at ${e.console}` : ''}`));
    // nothing should keep the process alive after a clean stop; make sure it ends anyway
    setTimeout(() => process.exit(), 5000).unref();
    return { data: { stopped: true, socket: ep.socket, port: ep.port ?? null }, text: '' };
  },
};
