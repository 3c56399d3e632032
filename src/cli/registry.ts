/**
 * Every berth command, in the order `berth --help` lists them: one module each in
 * src/cli/commands/ (names, options, help and handler; see CmdDef in ./types.ts). To add a
 * command, write its module and add it here; help, option parsing, the agent fast path and
 * the generated man pages and completion follow from the module.
 */
import type { CmdDef } from './types.js';
import { command as initenv } from './commands/initenv.js';
import { command as baseImport } from './commands/base-import.js';
import { command as baseBusybox } from './commands/base-busybox.js';
import { command as baseDebootstrap } from './commands/base-debootstrap.js';
import { command as baseFetch } from './commands/base-fetch.js';
import { command as baseKernel } from './commands/base-kernel.js';
import { command as baseList } from './commands/base-list.js';
import { command as baseRemove } from './commands/base-remove.js';
import { command as jcreate } from './commands/jcreate.js';
import { command as jstart } from './commands/jstart.js';
import { command as jstop } from './commands/jstop.js';
import { command as jrestart } from './commands/jrestart.js';
import { command as jremove } from './commands/jremove.js';
import { command as jls } from './commands/jls.js';
import { command as jexec } from './commands/jexec.js';
import { command as jset } from './commands/jset.js';
import { command as jget } from './commands/jget.js';
import { command as jclone } from './commands/jclone.js';
import { command as jrename } from './commands/jrename.js';
import { command as jregister } from './commands/jregister.js';
import { command as junregister } from './commands/junregister.js';
import { command as jmigrate } from './commands/jmigrate.js';
import { command as doctor } from './commands/doctor.js';
import { command as agent } from './commands/agent.js';
import { command as nodeAdd } from './commands/node-add.js';
import { command as nodeList } from './commands/node-list.js';
import { command as nodeRemove } from './commands/node-remove.js';
import { command as clusterLs } from './commands/cluster-ls.js';
import { command as bconsole } from './commands/bconsole.js';
import { vmCommand } from './family.js';
import { command as tokenAdd } from './commands/token-add.js';
import { command as tokenList } from './commands/token-list.js';
import { command as tokenRemove } from './commands/token-remove.js';

export const COMMANDS: readonly CmdDef[] = [
  initenv,
  baseImport, baseBusybox, baseDebootstrap, baseFetch, baseKernel, baseList, baseRemove,
  jcreate, jstart, jstop, jrestart, jremove, jls, jexec, jset, jget, jclone, jrename,
  jregister, junregister, jmigrate,
  vmCommand(jcreate, 'bcreate', 'create a VM: its first disk from a base tree, or empty (imgsize)'),
  vmCommand(jstart, 'bstart', 'start VM(s)'),
  vmCommand(jstop, 'bstop', 'stop VM(s): ACPI power button, then hard after stop_timeout'),
  vmCommand(jrestart, 'brestart', 'restart VM(s)'),
  vmCommand(jremove, 'bremove', 'remove VM(s) and their disks'),
  vmCommand(jls, 'bls', 'list VMs (CBSD columns JNAME JID VM_RAM VM_CPUS VM_OS_TYPE STATUS)'),
  vmCommand(jset, 'bset', 'change VM settings (key=value ...)'),
  vmCommand(jget, 'bget', 'show VM settings (all, or the keys named)'),
  vmCommand(jclone, 'bclone', 'copy a stopped VM (its disks too) to a new name'),
  vmCommand(jrename, 'brename', 'rename a stopped VM (its disks move with its data dir)'),
  vmCommand(jregister, 'bregister', 'adopt a VM descriptor (berth\'s or CBSD\'s) from jails-rcconf/ or shared storage'),
  vmCommand(junregister, 'bunregister', 'release a stopped VM: descriptor to jails-rcconf/, lease released'),
  bconsole,
  doctor, agent,
  nodeAdd, nodeList, nodeRemove, clusterLs,
  tokenAdd, tokenList, tokenRemove,
];
