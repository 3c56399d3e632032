/**
 * Linux bridges, as the envs' network attaches to them (veth for runc, tap for qemu). berth
 * never creates a bridge: the administrator names one (`interface=`), as CBSD's `nic_parent`
 * and Incus's `parent` name an existing one.
 */
import { existsSync } from 'node:fs';
import { engineError } from '../errors.js';

/** A Linux interface name: IFNAMSIZ 16 with the NUL; never "." or ".." (they name directories in /sys/class/net). */
export const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/**
 * Checks that `bridge` is a bridge on this host (sysfs `/sys/class/net/<bridge>/bridge`).
 * @param what what joins it, for the message (e.g. "the env's veth")
 * @param setHint the command that sets another bridge, e.g. `berth jset jname=web interface=<bridge>`
 * @throws BerthError E_NO_BRIDGE (exit 5) when it does not exist or is not a bridge
 */
export function checkBridge(bridge: string, what: string, setHint: string): void {
  if (existsSync(`/sys/class/net/${bridge}/bridge`)) return;
  const exists = existsSync(`/sys/class/net/${bridge}`);
  throw engineError('E_NO_BRIDGE', `interface=${bridge} ${exists ? 'is a network interface but not a bridge' : 'does not exist'} on this host (${what} joins a bridge)`, {
    hint: exists ? `give a bridge: ${setHint} (bridges here: ip -br link show type bridge)`
      : `create it: ip link add ${bridge} type bridge && ip link set ${bridge} up`,
  });
}
