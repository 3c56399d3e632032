/** `berth node add name= url= token=|token_file=`: checks the node's agent with the token before saving it (src/nodes/cluster.ts). */
import { str, withNode } from '../args.js';
import { tokenOf } from '../node-args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'node add', summary: 'add a remote node (its agent URL and token)',
  options: [o('name', 'node name'), o('url', 'agent URL, http://127.0.0.1:PORT or unix:/path'), o('token', 'the node\'s API token (visible in ps: prefer token_file=)'), o('token_file', 'a file holding the token, e.g. a copy of that node\'s etc/api.token')],
  async handler(opts) {
    const token = tokenOf(opts);
    const { addNode } = await import('../../nodes/cluster.js');
    return withNode(opts, async (ctx) => {
      const r = await addNode(ctx, { name: str(opts, 'name'), url: str(opts, 'url'), token });
      return { data: { node: r }, text: `${r.updated ? 'updated' : 'added'}: node ${r.name} at ${r.url} (its agent answered; ${r.envs} env(s) registered there)` };
    });
  },
};
