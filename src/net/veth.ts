/**
 * Linux veth pairs in a network namespace, the network of a runc env with vnet=1: a namespace
 * `berth-<node>-<jname>` whose eth0 carries the env's address, and a host end on a bridge.
 * Every command runs through src/proc.ts (argv, logged).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { engineError } from '../errors.js';
import { run } from '../proc.js';
import { checkBridge } from './bridge.js';

/** Network names of one env: netns, host-side veth, in-netns temporary veth name (IFNAMSIZ-safe). */
export interface VethNames {
  netns: string;
  hostVeth: string;
  peerVeth: string;
}

/** The names for env `jname` of node `nodename` (a hash keeps veth names within 15 characters). */
export function vethNames(nodename: string, jname: string): VethNames {
  const h = createHash('sha1').update(`${nodename}/${jname}`).digest('hex').slice(0, 10);
  return { netns: `berth-${nodename}-${jname}`, hostVeth: `bv${h}`, peerVeth: `bp${h}` };
}

/**
 * Makes the namespace and the veth pair: eth0 inside with `addr` (CIDR), lo up, host end on
 * `bridge` and up. Once the namespace is made, `marker` (a file) records that berth made it:
 * {@link vethDown} deletes only a namespace so recorded, never one that was there before.
 * @returns the namespace path for the OCI config (`/var/run/netns/<netns>`)
 * @throws BerthError E_NO_BRIDGE (exit 5) when `bridge` is no bridge; E_NETNS_EXISTS (exit 5)
 *   when the namespace exists already (nothing is touched); E_NETWORK (exit 5) when an `ip`
 *   command fails (the caller undoes with {@link vethDown})
 */
export async function vethUp(n: VethNames, bridge: string, addr: string, setHint: string, marker: string): Promise<string> {
  checkBridge(bridge, "the env's veth", setHint);
  if (existsSync(`/var/run/netns/${n.netns}`) && !existsSync(marker)) {
    throw engineError('E_NETNS_EXISTS', `network namespace ${n.netns} exists and berth did not make it for this start; refusing to use or delete it`, {
      hint: `if nothing uses it (ip netns pids ${n.netns} prints nothing), delete it: ip netns delete ${n.netns}`,
    });
  }
  const e = { errorCode: 'E_NETWORK' } as const;
  if (!existsSync(`/var/run/netns/${n.netns}`)) {
    await run(['ip', 'netns', 'add', n.netns], e);
    await writeFile(marker, `${n.netns}\n`);
  }
  await run(['ip', 'link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', n.peerVeth], e);
  await run(['ip', 'link', 'set', n.peerVeth, 'netns', n.netns], e);
  await run(['ip', '-n', n.netns, 'link', 'set', n.peerVeth, 'name', 'eth0'], e);
  await run(['ip', '-n', n.netns, 'addr', 'add', addr, 'dev', 'eth0'], e);
  await run(['ip', '-n', n.netns, 'link', 'set', 'lo', 'up'], e);
  await run(['ip', '-n', n.netns, 'link', 'set', 'eth0', 'up'], e);
  await run(['ip', 'link', 'set', n.hostVeth, 'master', bridge], e);
  await run(['ip', 'link', 'set', n.hostVeth, 'up'], e);
  return `/var/run/netns/${n.netns}`;
}

/**
 * Deletes what {@link vethUp} made, whatever part of it exists: the namespace only when
 * `marker` says berth made it, and the host veth (its name is this env's hash); never fails.
 */
export async function vethDown(n: VethNames, marker: string): Promise<void> {
  if (existsSync(marker)) {
    if (existsSync(`/var/run/netns/${n.netns}`)) await run(['ip', 'netns', 'delete', n.netns], { check: false });
    await rm(marker, { force: true });
  }
  if (existsSync(`/sys/class/net/${n.hostVeth}`)) await run(['ip', 'link', 'delete', n.hostVeth], { check: false });
}
