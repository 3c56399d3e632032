/**
 * The OCI runtime bundle `config.json` berth writes for runc (OCI runtime-spec 1.0.2,
 * config.md and config-linux.md; defaults modelled on `runc spec`). Pure: no I/O.
 */
import type { EnvConf } from '../../descriptor.js';

/** Inputs of {@link ociConfig}. */
export interface OciInput {
  jname: string;
  nodename: string;
  conf: EnvConf;
  /** the assembled root (jails/<jname>) */
  rootPath: string;
  /** network namespace path (/var/run/netns/<ns>) for vnet=1; undefined shares the host stack */
  netnsPath?: string;
}

/** The default main process: a shell that waits and exits on SIGTERM (PID 1 ignores unhandled signals). */
export const DEFAULT_RUNC_EXEC_START = "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done";

/** The capability set of `runc spec` (runc's default bounding set for containers). */
const CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** The process's argv: exec_start run by the env's own /bin/sh (CBSD exec_start is a shell command line). */
export function processArgs(conf: EnvConf): string[] {
  const cmd = conf.exec_start && conf.exec_start !== '0' ? conf.exec_start : DEFAULT_RUNC_EXEC_START;
  return ['/bin/sh', '-c', cmd];
}

/** The cgroup path: per node and env so two nodes on one host never collide. */
export function cgroupsPath(nodename: string, jname: string): string {
  return `/berth/${nodename}/${jname}`;
}

/** Builds config.json for the env (an object; JSON.stringify it). */
export function ociConfig(i: OciInput): Record<string, unknown> {
  const hostname = i.conf.host_hostname && i.conf.host_hostname !== '0' ? i.conf.host_hostname : i.jname;
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (i.netnsPath) namespaces.push({ type: 'network', path: i.netnsPath });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: processArgs(i.conf),
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'TERM=xterm', `BERTH_JNAME=${i.jname}`],
      cwd: '/',
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS, ambient: CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: i.rootPath, readonly: false },
    hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      cgroupsPath: cgroupsPath(i.nodename, i.jname),
      namespaces,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
