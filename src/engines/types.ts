/**
 * The engine contract (v2): what runs an env. One interface for every engine, one folder per
 * engine (src/engines/<name>/: runc, jail, qemu, bhyve), one line per engine in the registry
 * (src/engines/registry.ts), an {@link EngineInfo} of what each supports (Incus's driver
 * tables: one interface, one file per backend, an Info() of what it supports). The lifecycle
 * (src/lifecycle/) is written once over this interface and never names an engine.
 *
 * What the lifecycle does around an engine depends on its {@link EngineInfo.root}:
 * - `tree` (runc, jail): the lifecycle fills the data dir from a base at jcreate and assembles
 *   the root under jails/<jname> (base read-only + data, fstab) before {@link Engine.start};
 *   the engine runs a process tree on it;
 * - `disk` (qemu, bhyve): the engine makes the env's disks at jcreate ({@link Engine.create})
 *   and boots them; no root tree is assembled.
 */
import type { EnvConf } from '../descriptor.js';
import type { EnvPaths, Workdir } from '../paths.js';
import type { Platform } from '../platform.js';

/** What an engine is told about the env it runs. */
export interface EngineEnv {
  jname: string;
  nodename: string;
  wd: Workdir;
  paths: EnvPaths;
  conf: EnvConf;
}

/** The EngineEnv of env `jname` with settings `conf` on this node. */
export function engineEnv(ctx: { nodename: string; wd: Workdir }, jname: string, conf: EnvConf): EngineEnv {
  return { jname, nodename: ctx.nodename, wd: ctx.wd, paths: ctx.wd.env(jname, conf.data), conf };
}

/** Result of a start: `jid` is the engine's run id: the jail id (jail), the init pid (runc), the VM's pid (qemu, bhyve). */
export interface StartResult {
  jid: number;
}

/** How an env's network is made: the host's own stack, a veth pair (Linux), an epair (FreeBSD), a tap (VMs). */
export type NetKind = 'host' | 'veth' | 'epair' | 'tap';

/** One setting an engine owns (CBSD key names). */
export interface SettingDef {
  /** the key, as in the descriptor and on the command line */
  readonly key: string;
  /** one line for `--help` */
  readonly help: string;
  /** the value form shown in `--help` (`0|1`, `bytes`, `path` ...) */
  readonly arg?: string;
  /**
   * Checks a user's value and returns its stored form (`vm_ram=1g` is stored in bytes).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  normalize?(value: string): string;
}

/** Keys an engine owns by pattern (the numbered rows of a VM: dsk_path1, nic_parent2 ...). */
export interface SettingPattern {
  readonly pattern: RegExp;
  /** one line for `--help` naming the form, e.g. `dsk_pathN: the path of disk N` */
  readonly help: string;
}

/** What an engine supports: the registry's table row (shown by `--help` and doctor). */
export interface EngineInfo {
  /** the emulator name (design/product.md "Words"): runc | jail | qemu | bhyve */
  readonly name: string;
  /** one line for `--help` */
  readonly summary: string;
  readonly platforms: readonly Platform[];
  /** tree: a root file system assembled by the lifecycle; disk: disk images the engine boots */
  readonly root: 'tree' | 'disk';
  /** jexec runs commands inside */
  readonly exec: boolean;
  /** what `bconsole`/the web console attaches to: a serial console socket, or none */
  readonly console: 'none' | 'serial';
  /** jmigrate live=1 */
  readonly liveMigration: boolean;
  /** the network kinds it makes */
  readonly network: readonly NetKind[];
  /** live: run in the tests on a real host; transcript: verified by command transcripts only (no such host here) */
  readonly verified: 'live' | 'transcript';
  /** the settings it owns besides the lifecycle's common ones (src/lifecycle/settings.ts) */
  readonly settings: readonly SettingDef[];
  readonly settingPatterns?: readonly SettingPattern[];
  /** the CLI command family: `j` (jcreate, jstart ...) or `b` (bcreate, bstart ...: VMs) */
  readonly family: 'j' | 'b';
}

/** One engine of the registry (src/engines/registry.ts): its static description, and its implementation loaded on demand. */
export interface EngineModule {
  readonly info: EngineInfo;
  load(): Promise<Engine>;
}

/**
 * Where a console is reached: the serial console of a VM, a unix socket (qemu) or a terminal
 * device (bhyve: the user's side of an nmdm(4) pair, attached with `attach`); its log.
 */
export interface ConsoleEndpoint {
  kind: 'unix' | 'tty';
  /** the socket (unix) or the terminal device (tty) to connect to */
  path: string;
  /** tty: the command that attaches a terminal to it (`cu -l /dev/nmdm...B -s 115200`) */
  attach?: string[];
  /** what it printed so far */
  log?: string;
}

/**
 * Where a running VM's screen is: a VNC (RFB) server on this node's loopback, which only the
 * agent connects to (the web console relays it to noVNC over its own authenticated websocket).
 */
export interface ScreenEndpoint {
  /** 127.0.0.1 */
  host: string;
  /** the RFB port (TCP) */
  port: number;
  /** the server asks for the VNC password (vnc_password set) */
  password: boolean;
}

/**
 * What a running env uses of this node, read by {@link Engine.usage} (the web console's plots).
 * CPU as a counter (the caller takes the difference between two readings), memory as a level.
 */
export interface EngineUsage {
  /** CPU seconds the env has used since it started (all its processes; a VM: its vCPUs) */
  cpuSec: number;
  /** bytes of memory it uses now (a container: its cgroup's usage; a VM: qemu's resident set) */
  memBytes: number;
  /** bytes it may use at most when the engine knows (a VM: its guest RAM) */
  memMaxBytes?: number;
}

/** Options of {@link Engine.exec}. */
export interface ExecOptions {
  tty?: boolean;
  /** file descriptors for the command's stdout and stderr (default: the caller's) */
  stdout?: number;
  stderr?: number;
}

/** An engine. Implementations live in src/engines/<name>/engine.ts. */
export interface Engine {
  /** what it supports */
  readonly info: EngineInfo;
  /** the emulator name (= info.name) */
  readonly name: string;
  /**
   * How often (ms) the node's run monitor asks {@link Engine.isRunning} (default 250). An engine
   * whose check spawns a process (jail: `jls`) sets a longer interval.
   */
  readonly monitorIntervalMs?: number;
  /**
   * Checks the engine's settings together (jcreate, jset, jregister), beyond each key's own
   * check (e.g. vnet=1 needs ip4_addr=A/N).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  validate(conf: EnvConf): void;
  /**
   * Checks a descriptor adopted from (shared) storage before it is trusted on this node (jail:
   * host commands only from a file only root can change).
   * @throws BerthError (exit 1) naming the file and what to do
   */
  checkAdopted?(file: string, conf: EnvConf): void;
  /**
   * jcreate of a disk engine: makes the env's disks in its data dir (from a base tree, or empty
   * of `imgsize`). Undoes its own partial work on failure. Tree engines have none: the lifecycle
   * fills the data dir from the base.
   * @throws BerthError (exit 2 for bad settings, 5 for a failing tool)
   */
  create?(env: EngineEnv, input: { baseDir?: string }): Promise<void>;
  /**
   * jclone: changes in place, in the clone's settings, what a clone must not share with its
   * source (a VM's MAC addresses). Engines without such settings have none.
   */
  cloneConf?(conf: EnvConf): void;
  /**
   * jremove of a disk engine whose disks may live outside the data dir (qemu: RBD images):
   * removes them, before anything else of the env is deleted, so that a refusal (an image that
   * is open, or that clones depend on) leaves the env as it was. Runs on the owner only, inside
   * the storage bracket, after remove.d.
   * Removes only what was made for this env (qemu: images marked with its uuid); what it leaves
   * it names in `notes`.
   * @returns what it removed (e.g. `rbd:rbd/vm1-dsk1`), and notes (e.g. `rbd/x left: not made for vm2`)
   * @throws BerthError (exit 1 when refused, 5 for a failing tool)
   */
  removeDisks?(env: EngineEnv): Promise<{ removed: string[]; notes: string[] }>;
  /**
   * jclone of a disk engine whose disks may live outside the data dir (qemu: RBD images, by an
   * instant rbd clone): makes the clone's copies of them and points the disk rows of `dst.conf`
   * at them. All or nothing; the returned `undo` removes what it made (jclone calls it when a
   * later step fails).
   * @returns what it made, and how to undo it
   */
  cloneDisks?(src: EngineEnv, dst: EngineEnv): Promise<{ made: string[]; undo(): Promise<void> }>;
  /**
   * Starts the env: for a tree engine on the root assembled at `paths.path`; sets up its
   * network. Cleans up its own partial state on failure, then throws.
   * @throws BerthError E_ENGINE (exit 5)
   */
  start(env: EngineEnv): Promise<StartResult>;
  /**
   * Stops the env: polite signal/exec.stop/ACPI, then force after `timeoutSec` seconds.
   * Returns when no process of the env is left. Idempotent.
   */
  stop(env: EngineEnv, timeoutSec: number): Promise<void>;
  /** True while the env (started with `jid`) still runs. */
  isRunning(env: EngineEnv, jid: number): Promise<boolean>;
  /**
   * How the guest of a running VM ended while its process still holds it halted (qemu with
   * on_poweroff=restart or on_crash=restart: `-action shutdown=pause`, `panic=pause`):
   * 'poweroff' or 'crash'; undefined while the guest runs, when the process is gone (that is
   * {@link Engine.isRunning}'s answer) or when the VM's settings never hold a guest. The run
   * monitor asks it after isRunning said true; src/lifecycle/guest-end.ts acts on it.
   */
  guestEnded?(env: EngineEnv): Promise<GuestEnd | undefined>;
  /**
   * Powers a halted guest on again inside the same process (qemu: QMP `system_reset`, `cont`):
   * the same disks, locks, taps and lease; the guest boots from the start.
   * @throws BerthError E_QMP* (exit 5) when the process does not answer
   */
  restartGuest?(env: EngineEnv): Promise<void>;
  /** Removes engine state (runc container record, netns/veth, jail.conf, taps). Idempotent. */
  cleanup(env: EngineEnv): Promise<void>;
  /**
   * Runs `argv` inside the running env (engines with `info.exec`).
   * @returns the command's exit code
   */
  exec?(env: EngineEnv, argv: string[], opts: ExecOptions): Promise<number>;
  /** The running env's console (engines with `info.console` other than none). */
  console?(env: EngineEnv): Promise<ConsoleEndpoint>;
  /**
   * The running env's CPU and memory use (runc: its cgroup counters; qemu: QMP and /proc), or
   * undefined when it cannot be read now (not running, counters gone). Cheap enough to be
   * called every few seconds for every running env. Never throws.
   */
  usage?(env: EngineEnv, jid: number): Promise<EngineUsage | undefined>;
  /** The running VM's screen (VNC), or undefined when it has none (vm_vnc_port=1). */
  screen?(env: EngineEnv): Promise<ScreenEndpoint | undefined>;
  /**
   * Live migration, destination side (engines with `info.liveMigration`): starts the env paused,
   * waiting for the incoming state on a node-local unix socket (never a network port: the
   * agent relays its authenticated migration channel to it, src/agent/stream.ts).
   * Undo with stop(env, 0) + cleanup.
   * @returns the run id and the URI it listens on (`unix:<path>`)
   */
  liveIncoming?(env: EngineEnv): Promise<{ jid: number; uri: string }>;
  /**
   * Live migration, source side: sends the running env to `uri` (`unix:<path>`, the local end
   * of the migration channel, src/nodes/stream.ts); `atSwitchover` runs while the
   * env is paused here and not yet resumed there (the lease is handed over in it); then the
   * source's process quits. On a failure (`atSwitchover` throwing too) the env runs here
   * again, except when the error `atSwitchover` threw has `keepPaused: true` (the caller no
   * longer holds the lease): then it stays paused.
   * @returns the engine's own figures (ms, bytes)
   * @throws BerthError E_MIGRATE (exit 5)
   */
  liveSend?(env: EngineEnv, uri: string, atSwitchover: () => Promise<void>): Promise<LiveStats>;
  /** Live migration, destination side: waits for the state to be complete and resumes the env. */
  liveResume?(env: EngineEnv): Promise<void>;
  /**
   * What `doctor` reports about this engine on the node (qemu: the accelerator its probe
   * found). Never throws for a missing or broken runtime: that is a warn or fail row.
   */
  doctor?(wd: Workdir): Promise<EngineCheck>;
}

/** An engine's figures of a live migration. Times in ms, sizes in bytes. */
export interface LiveStats {
  /** the engine's own downtime (QEMU: query-migrate downtime) */
  downtimeMs: number;
  totalMs: number;
  transferredBytes: number;
}

/** One `doctor` row of an engine (see {@link Engine.doctor}). */
export interface EngineCheck {
  status: 'ok' | 'warn' | 'fail';
  /** one line for humans */
  detail: string;
  data?: Record<string, unknown>;
}

/** How a guest ended while its engine holds it (see {@link Engine.guestEnded}): it powered off, or it crashed (a pvpanic report). */
export type GuestEnd = 'poweroff' | 'crash';
