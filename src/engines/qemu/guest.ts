/**
 * What a guest made from a busybox base (src/bases.ts busyboxBase) needs to boot as a VM:
 * busybox init's `/etc/inittab`, an `/etc/init.d/rcS` that mounts /proc, /sys, /dev/pts,
 * starts busybox `acpid` and prints {@link GUEST_READY_LINE} on the serial console, a shell
 * on ttyS0, and the acpid action `/etc/acpi/PWRF/00000080` that powers the guest off when
 * the ACPI power button is pressed (QMP `system_powerdown`; busybox acpid runs
 * /etc/acpi/<ACTION>/<PARAMETER> for the `PWRF 00000080` event of the power button).
 *
 * These files are written into the disk berth makes from the tree (src/engines/qemu/disk.ts
 * `ext4FromTree` with `files`), never into the base itself, which stays a plain root tree
 * that containers use too.
 */
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** The line the guest's rcS prints on the serial console once userspace runs (then its uptime in seconds). */
export const GUEST_READY_LINE = 'berth-guest: userspace up';

/** One file to add to a disk made from a tree. */
export interface GuestFile {
  /** path inside the guest, relative (no leading /), e.g. `etc/inittab` */
  path: string;
  content: string;
  /** permission bits, e.g. 0o755 */
  mode: number;
}

/** True when the tree's /sbin/init is busybox (a link to it, or busybox itself). */
export function isBusyboxTree(tree: string): boolean {
  const init = join(tree, 'sbin', 'init');
  try {
    const st = lstatSync(init);
    if (st.isSymbolicLink()) return /(^|\/)busybox$/.test(readlinkSync(init));
    return existsSync(join(tree, 'bin', 'busybox')) && st.ino === lstatSync(join(tree, 'bin', 'busybox')).ino;
  } catch {
    return false;
  }
}

/**
 * The files a busybox tree needs to run as a VM guest (see the module comment).
 * @param opts.hostname written to /etc/hostname when given
 */
export function busyboxGuestFiles(opts: { hostname?: string } = {}): GuestFile[] {
  const files: GuestFile[] = [
    {
      path: 'etc/inittab', mode: 0o644, content: `# berth: busybox init of a VM guest (written when berth made this disk)
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
`,
    },
    {
      path: 'etc/init.d/rcS', mode: 0o755, content: `#!/bin/sh
# berth: start-up of a VM guest made from a busybox base (written when berth made this disk)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -o remount,rw / 2>/dev/null
mkdir -p /dev/pts /dev/shm /var/run /var/log /tmp
mount -t devpts devpts /dev/pts 2>/dev/null
[ -f /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up 2>/dev/null
# the ACPI power button (QMP system_powerdown) runs /etc/acpi/PWRF/00000080
acpid
echo "${GUEST_READY_LINE} $(cut -d' ' -f1 /proc/uptime)"
`,
    },
    { path: 'etc/acpi/PWRF/00000080', mode: 0o755, content: '#!/bin/sh\n# berth: the ACPI power button powers the guest off\nexec /sbin/poweroff\n' },
  ];
  if (opts.hostname) files.push({ path: 'etc/hostname', mode: 0o644, content: `${opts.hostname}\n` });
  return files;
}
