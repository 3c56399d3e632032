/**
 * "Who has it?": when an env is not registered on this node, its ownership record in the
 * shared lease_dir names the node that owns it, so that `jstart web1` on the node an env moved
 * away from says "owned by node2" (exit 4) instead of "no such env" (exit 3). The record is read
 * first (exact, visible on every node); the known nodes' agents are asked only when there is
 * no record (an env of berth 0.1 whose lease is still in its sysdir).
 * CBSD routes such commands to the owning node (sqlreplica, §11); berth refuses and names it.
 */
import { BerthError, ownedError } from '../errors.js';
import type { NodeCtx } from '../node.js';
import { nodeClient } from './cluster.js';
import { readLeaseState } from '../ownership/record.js';

/** Seconds to wait for each node's answer. */
export const OWNER_QUERY_TIMEOUT_SEC = 3;

/**
 * Finds the node that owns `jname`, if not this one: from its ownership record, else from the
 * known nodes' agents.
 * @returns the node name and what is known of the env, or undefined (nobody owns it, or nobody answered)
 */
export async function findOwnerElsewhere(ctx: NodeCtx, jname: string): Promise<{ node: string; env: Record<string, unknown> } | undefined> {
  const st = await readLeaseState(ctx.wd.env(jname).lease).catch(() => undefined);
  if (st?.holder && st.holder.node && st.holder.node !== ctx.nodename) return { node: st.holder.node, env: { generation: st.generation } };
  if (st && st.generation > 0) return undefined; // a record: nobody else holds it
  const nodes = ctx.inv.listNodes();
  const answers = await Promise.all(nodes.map(async (n) => {
    try {
      const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), OWNER_QUERY_TIMEOUT_SEC * 1000).unref());
      const a = await Promise.race([nodeClient(ctx, n.name).status(jname), timeout]);
      return a ? { node: n.name, env: ((a as Record<string, unknown>).env ?? a) as Record<string, unknown> } : undefined;
    } catch {
      return undefined;
    }
  }));
  return answers.find((a) => a !== undefined);
}

/**
 * Turns an E_NO_SUCH_ENV error for a plain jname into E_OWNED_ELSEWHERE (exit 4) when another
 * node owns that env; returns the error unchanged otherwise.
 */
export async function explainNotFound(ctx: NodeCtx, jname: string, err: BerthError): Promise<BerthError> {
  if (err.code !== 'E_NO_SUCH_ENV' || /[*?[]/.test(jname)) return err;
  const owner = await findOwnerElsewhere(ctx, jname);
  if (!owner) return err;
  const gen = owner.env.generation !== undefined ? `, generation ${String(owner.env.generation)}` : '';
  const status = owner.env.status !== undefined ? `, ${String(owner.env.status)}` : '';
  return ownedError('E_OWNED_ELSEWHERE', `${jname} is not registered on ${ctx.nodename}: node ${owner.node} owns it${gen}${status}`,
    { hint: `operate it on ${owner.node}, or move it here: berth jmigrate jname=${jname} dst=${ctx.nodename} (run on ${owner.node})`, details: { owner: owner.node } });
}
