/**
 * Linux tap devices, the network of a VM (qemu): one tap per NIC row, on the bridge its
 * `nic_parent` names (CBSD's nic_parent; Incus's nictype=bridged), made before qemu starts
 * (`-netdev tap,ifname=<tap>,script=no`) and deleted at teardown. Every command runs through
 * src/proc.ts (argv, logged).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { run } from '../proc.js';
import { checkBridge } from './bridge.js';

/** The tap of NIC `index` of VM `jname` on node `nodename`: `bt<hash><index>` (a hash keeps it within 15 characters). */
export function tapName(nodename: string, jname: string, index: number): string {
  const h = createHash('sha1').update(`${nodename}/${jname}`).digest('hex').slice(0, 9);
  return `bt${h}${index}`.slice(0, 15);
}

/**
 * Makes tap `tap`, puts it on `bridge` (none when undefined: a tap on no bridge) with `mtu`
 * when given, and up. A tap left by an
 * earlier run of the same VM is deleted first.
 * @param setHint the command that sets another bridge, e.g. `berth bset jname=vm1 nic_parent1=<bridge>`
 * @throws BerthError E_NO_BRIDGE (exit 5) when `bridge` is no bridge; E_NETWORK (exit 5) when
 *   an `ip` command fails (the tap is deleted again)
 */
export async function tapUp(tap: string, bridge: string | undefined, setHint: string, mtu?: number): Promise<void> {
  if (bridge) checkBridge(bridge, "the VM's tap", setHint);
  await tapDown(tap);
  const e = { errorCode: 'E_NETWORK' } as const;
  try {
    await run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], e);
    if (bridge) await run(['ip', 'link', 'set', tap, 'master', bridge], e);
    if (mtu) await run(['ip', 'link', 'set', tap, 'mtu', String(mtu)], e);
    await run(['ip', 'link', 'set', tap, 'up'], e);
  } catch (err) {
    await tapDown(tap);
    throw err;
  }
}

/** Deletes tap `tap` when it exists; never fails. */
export async function tapDown(tap: string): Promise<void> {
  if (existsSync(`/sys/class/net/${tap}`)) await run(['ip', 'link', 'delete', tap], { check: false });
}
