/**
 * FreeBSD epair(4) interfaces, the network of a vnet jail: `ifconfig epair create` gives the
 * pair epairNa/epairNb; the host end gets a description naming its env and joins the bridge
 * (`ifconfig <bridge> addm`), the jail end goes into the jail (jail.conf `vnet.interface`).
 * The description is checked before destroying, so an epair number the kernel reused for
 * another env is never destroyed. (As CBSD's jstart, which names its epairs too.)
 * Not run live on the Linux test machines: the commands are checked by transcript.
 */
import { engineError } from '../errors.js';
import { run } from '../proc.js';

/** The two ends of an epair: `a` on the host, `b` for the jail. */
export interface Epair {
  a: string;
  b: string;
}

/**
 * Creates an epair, describes its host end as `description` and adds it to `bridge`.
 * @throws BerthError E_VNET (exit 5) when ifconfig fails or prints no epairNa (what was
 *   created before the failure is destroyed)
 */
export async function epairUp(bridge: string, description: string): Promise<Epair> {
  const r = await run(['ifconfig', 'epair', 'create'], { errorCode: 'E_VNET' });
  const a = r.stdout.trim();
  if (!/^epair\d+a$/.test(a)) throw engineError('E_VNET', `ifconfig epair create printed ${JSON.stringify(a)}, not epairNa`);
  try {
    await run(['ifconfig', a, 'description', description, 'up'], { errorCode: 'E_VNET' });
    await run(['ifconfig', bridge, 'addm', a], { errorCode: 'E_VNET' });
  } catch (e) {
    await run(['ifconfig', a, 'destroy'], { check: false });
    throw e;
  }
  return { a, b: a.replace(/a$/, 'b') };
}

/** Destroys epair `a` (host end) unconditionally; never fails. For undoing a start. */
export async function epairDestroy(a: string): Promise<void> {
  await run(['ifconfig', a, 'destroy'], { check: false });
}

/**
 * Destroys epair `a` only when it still carries `description`.
 * @throws BerthError E_VNET (exit 5) when the destroy itself fails
 */
export async function epairDown(a: string, description: string): Promise<void> {
  const show = await run(['ifconfig', a], { check: false });
  if (show.exitCode === 0 && show.stdout.includes(`description: ${description}`)) {
    await run(['ifconfig', a, 'destroy'], { errorCode: 'E_VNET' });
  }
}
