/**
 * Linux veth pairs in a network namespace, the network of a runc env with vnet=1: a namespace
 * `berth-<node>-<jname>` whose eth0 carries the env's address, and a host end on a bridge.
 * Every command runs through src/proc.ts (argv, logged).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
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
 * `bridge` and up.
 * @returns the namespace path for the OCI config (`/var/run/netns/<netns>`)
 * @throws BerthError E_NO_BRIDGE (exit 5) when `bridge` is no bridge; E_NETWORK (exit 5) when
 *   an `ip` command fails (the caller undoes with {@link vethDown})
 */
export async function vethUp(n: VethNames, bridge: string, addr: string, setHint: string): Promise<string> {
  checkBridge(bridge, "the env's veth", setHint);
  const e = { errorCode: 'E_NETWORK' } as const;
  await run(['ip', 'netns', 'add', n.netns], e);
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

/** Deletes what {@link vethUp} made, whatever part of it exists; never fails. */
export async function vethDown(n: VethNames): Promise<void> {
  if (existsSync(`/var/run/netns/${n.netns}`)) await run(['ip', 'netns', 'delete', n.netns], { check: false });
  if (existsSync(`/sys/class/net/${n.hostVeth}`)) await run(['ip', 'link', 'delete', n.hostVeth], { check: false });
}
