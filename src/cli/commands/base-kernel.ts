/**
 * `berth base kernel name= [package=] [deb=]`: a kernel base for VMs booted by direct kernel
 * boot (`bcreate ... vm_kernel=<name>`): the Debian kernel (default linux-image-cloud-amd64,
 * fetched with `apt-get download`) and a small initramfs from the host's busybox-static that
 * loads the virtio modules. Thin handler over src/engines/qemu/kernel.ts.
 */
import { str, withNode } from '../args.js';
import { baseName } from '../base-args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'base kernel', summary: 'make a kernel base for VMs (vm_kernel=): a Debian kernel and a busybox initramfs',
  options: [o('name', 'base name'), o('package', 'Debian kernel package (default linux-image-cloud-amd64)'), o('deb', 'a kernel .deb already on disk instead of apt-get download')],
  async handler(opts, args, io) {
    const name = baseName(opts, args);
    const { makeKernelBase } = await import('../../engines/qemu/kernel.js');
    return withNode(opts, async (ctx) => {
      const k = await makeKernelBase(ctx.wd, name, { package: str(opts, 'package'), deb: str(opts, 'deb'), onProgress: io.interactive || io.verbose ? io.note : undefined });
      return { data: { base: k }, text: `kernel base ${k.name} ready at ${k.path} (${k.vmlinuz}, ${k.initrd}); boot a VM with it: berth bcreate jname=<vm> base=<tree> vm_kernel=${k.name}` };
    });
  },
};
