/** `berth base list`: NAME PATH SIZE ENVS (size in bytes, ENVS = envs of this node using it). */
import { withNode } from '../args.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'base list', summary: 'list bases', options: [],
  async handler(opts) {
    const { listBases } = await import('../../bases.js');
    return withNode(opts, async (ctx) => {
      const bases = listBases(ctx);
      const text = renderTable(['name', 'path', 'size', 'envs'], bases.map((b) => [b.name, b.path, b.size, b.envs.length]));
      return { data: { bases: bases.map((b) => ({ ...b, envCount: b.envs.length })) }, text };
    });
  },
};
