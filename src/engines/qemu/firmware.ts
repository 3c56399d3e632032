/**
 * UEFI firmware for vm_efi=uefi: Debian's `ovmf` package (OVMF_CODE_4M.fd read-only, and a
 * per-VM copy of the variable store OVMF_VARS_4M.fd kept in the VM's sysdir, so that the
 * guest's boot entries move with it, as CBSD keeps BHYVE_UEFI_VARS.fd in jails-system/<vm>/).
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT } from '../../errors.js';
import type { UefiFiles } from './argv.js';

/** Where Debian's ovmf package puts the firmware, in order of preference (code, vars template). */
export const OVMF_CANDIDATES: readonly [string, string][] = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
];

/** The name of a VM's variable store in its sysdir. */
export const UEFI_VARS_FILE = 'OVMF_VARS.fd';

/**
 * The firmware for a VM: OVMF code and this VM's variable store in `sysdir` (copied from the
 * template the first time; never overwritten).
 * @throws BerthError E_NO_FIRMWARE (exit 5) when the ovmf package is missing
 */
export async function uefiFiles(sysdir: string, candidates: readonly [string, string][] = OVMF_CANDIDATES): Promise<UefiFiles> {
  const found = candidates.find(([c, v]) => existsSync(c) && existsSync(v));
  if (!found) throw new BerthError('E_NO_FIRMWARE', 'vm_efi=uefi needs the OVMF firmware, which is not installed', EXIT.ENGINE, { hint: 'apt-get install ovmf' });
  const vars = join(sysdir, UEFI_VARS_FILE);
  if (!existsSync(vars)) {
    await copyFile(found[1], vars, 1 /* COPYFILE_EXCL */);
    await chmod(vars, 0o600);
  }
  return { code: found[0], vars };
}
