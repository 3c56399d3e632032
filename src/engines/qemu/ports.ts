/**
 * VNC ports of a qemu VM on 127.0.0.1: vm_vnc_port 0 picks the first port in 5900-6900 that is
 * free together with its websocket port (CBSD's auto range), 1 turns VNC off, N takes that port.
 * The websocket port follows QEMU's own convention, 5700 + display, i.e. the VNC port - 200.
 * A port is free when this process can listen on it; another process may still take it before
 * qemu does, and qemu then fails to start with "Address already in use" (the caller may retry).
 */
import { createServer } from 'node:net';
import { BerthError, EXIT } from '../../errors.js';
import { VNC_AUTO_RANGE } from '../vm/settings.js';
import { vncSetting, type VmSpec } from '../vm/spec.js';

/** websocket port = VNC port - this (QEMU: websocket 5700 + display, VNC 5900 + display). */
export const WEBSOCKET_OFFSET = 200;

/** True when `port` on `host` can be listened on now. */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * The VNC and websocket ports for a VM, or undefined when VNC is off.
 * @throws BerthError E_PORT_TAKEN (exit 5) when the fixed port (or its websocket port) is in
 *   use, or no pair is free in 5900-6900
 */
export async function chooseVncPorts(spec: Pick<VmSpec, 'vncPort' | 'jname'>, isFree: (port: number) => Promise<boolean> = portFree): Promise<{ port: number; websocketPort: number } | undefined> {
  const v = vncSetting(spec);
  if (v.kind === 'off') return undefined;
  if (v.kind === 'port') {
    const ws = v.port - WEBSOCKET_OFFSET;
    for (const p of [v.port, ws]) {
      if (!(await isFree(p))) throw new BerthError('E_PORT_TAKEN', `VNC of ${spec.jname}: port ${p} on 127.0.0.1 is in use (vm_vnc_port=${v.port}, websocket ${ws})`, EXIT.ENGINE, { hint: 'choose another vm_vnc_port, or 0 for a free one' });
    }
    return { port: v.port, websocketPort: ws };
  }
  for (let p = VNC_AUTO_RANGE[0]; p <= VNC_AUTO_RANGE[1]; p++) {
    if ((await isFree(p)) && (await isFree(p - WEBSOCKET_OFFSET))) return { port: p, websocketPort: p - WEBSOCKET_OFFSET };
  }
  throw new BerthError('E_PORT_TAKEN', `VNC of ${spec.jname}: no free port in ${VNC_AUTO_RANGE[0]}-${VNC_AUTO_RANGE[1]} (with its websocket port)`, EXIT.ENGINE, { hint: 'set vm_vnc_port=1 (off) or free some ports' });
}

/**
 * Sets the VNC password of a running VM through QMP (`change-vnc-password`), so that it never
 * appears on a command line. qemu runs with `password=on` when vnc_password is set and accepts
 * no VNC login until this is done.
 * @throws BerthError E_QMP (exit 5)
 */
export async function setVncPassword(qmp: { execute(cmd: string, args?: Record<string, unknown>): Promise<unknown> }, password: string): Promise<void> {
  await qmp.execute('change-vnc-password', { password });
}
