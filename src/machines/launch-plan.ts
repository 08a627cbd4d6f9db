// The launch plan: everything one start does, computed as data from the
// launch spec (plan.ts: the start request resolved) and what the host offers.
// nstar-init's spec (mounts, ids, caps, rlimits, seccomp, net mode, the
// environment with the fd numbers), the clone flags, the fds passed and their
// order, the sockets and the persist directory to make. Pure: the host is
// seen through a HostView, and what the plan would log it returns as notes.
// launch() (actors/launch) only executes it; the runtime opens beforehand
// what `launchNeeds` asks for.
import type { Manifest, Socket } from '../model/manifest.js';
import { checkComponent, child } from '../model/safe-path.js';
import { compileSeccomp, type SeccompArch } from '../model/seccomp.js';
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS } from '../native-api/process.js';
import type { LaunchSpec } from './contracts.js';
import {
  capabilityMask, persistDir, planMounts, resolveGroups, rlimitsOf, schedOf, type HostView, type Note, type SandboxOp, type Sched,
} from './sandbox-plan.js';

export type { HostView, MountOp, Note, SandboxOp, SymlinkOp } from './sandbox-plan.js';

/** `fd`: join the namespace whose fd comes with the spec message (made ahead of time, netns-pool.ts). */
export type NetMode = 'new' | 'host' | 'join' | 'fd';

/** Everything nstar-init needs, in the order it uses it (encoded by actors/launch/launch-protocol.ts). */
export interface InitSpec {
  name: string;
  root: string;
  net: { mode: NetMode; name?: string };
  mounts: SandboxOp[];
  hostname?: string;
  uid: number;
  gid: number;
  groups: number[];
  /** resource number → soft/hard (undefined = infinity). */
  rlimits: { resource: number; soft?: number; hard?: number }[];
  sched?: Sched;
  caps: bigint;
  seccomp?: Buffer;
  selinuxExec?: string;
  init: string;
  args: string[];
  env: string[];
  /** Extra fds after the control socket (console, then sockets). */
  nfds: number;
  /** TEST bits; honoured by launch only under NSTAR_TEST=1. */
  test?: number;
}

/** The host as a launch sees it. */
export interface LaunchHost extends HostView {
  /** The architecture the seccomp filter is compiled for (default: this process's). */
  arch?: SeccompArch;
  /** TEST bits for init (launch-protocol.ts TEST), given only under NSTAR_TEST=1. */
  test?: number;
}

/** One of the manifest's unix sockets: made by the launcher, passed to the container as an fd. */
export interface SocketPlan extends Socket {
  name: string;
  /** socket_dir/<name>:<version>:<sock>. */
  path: string;
}

export interface LaunchPlan {
  /** What nstar-init gets, complete. */
  init: InitSpec;
  /** CLONE_NEW* flags of init's clone. */
  cloneFlags: number;
  /** spec.consoleFd goes to init as the first extra fd (the container's fd 3). */
  console: boolean;
  /** The manifest's sockets by name: the extra fds after the console, in this order. */
  sockets: SocketPlan[];
  /** spec.netnsFd goes with the spec message: init joins it instead of the clone making a namespace. */
  netns: boolean;
  /** The persist directory: made, 0700 and owned by the container's ids, on every start. */
  persist?: { dir: string; uid: number; gid: number };
  /** Lines for the launcher's log. */
  notes: Note[];
}

/** Deviation 14: no network entry = a new namespace with lo up. A named one is joined by init. */
function getsNewNetns(m: Manifest): boolean {
  return m.network === undefined;
}

/**
 * What the runtime opens before launch(): the container console's socketpair
 * (when the manifest asks and a console server can adopt the other end) and a
 * network namespace made ahead of time (when the container gets a new one).
 */
export function launchNeeds(m: Manifest, consoleServer: boolean): { console: boolean; netns: boolean } {
  return { console: m.console !== undefined && consoleServer, netns: getsNewNetns(m) };
}

/**
 * socket_dir/<name>:<version>:<sock>. The native side unlinks, binds, chmods
 * and chowns this path as root: it must be a file directly in socket_dir.
 */
export function socketPath(socketDir: string, container: string, sock: string): string {
  return child(socketDir, `${container}:${checkComponent(sock, 'socket name')}`, 'socket file name');
}

function networkOf(m: Manifest, prepared: boolean): InitSpec['net'] {
  // A namespace made ahead of time replaces the one the clone would create.
  if (getsNewNetns(m)) return { mode: prepared ? 'fd' : 'new' };
  if (m.network === 'host') return { mode: 'host' };
  return { mode: 'join', name: m.network!.namespace };
}

function cloneFlagsOf(net: NetMode): number {
  const base = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  return net === 'new' ? base | CLONE_NEWNET : base;
}

/** The spec's environment plus the extra fds' numbers: the container sees them from 3 on, console first, then sockets by name. */
function initEnv(spec: LaunchSpec, console: boolean, sockets: SocketPlan[]): string[] {
  const env = { ...spec.env };
  if (console) env.NORTHSTAR_CONSOLE = '3';
  const first = 3 + (console ? 1 : 0);
  sockets.forEach((s, i) => (env[`NORTHSTAR_SOCKET_${s.name}`] = String(first + i)));
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

function seccompOf(m: Manifest, arch: SeccompArch | undefined, notes: Note[]): Buffer | undefined {
  if (!m.seccomp) return undefined;
  const onSkip = (name: string, on: string) => notes.push({ logger: 'seccomp', level: 'debug', text: `seccomp.allow: skipping ${name}, not a syscall on ${on}` });
  return compileSeccomp(m.seccomp, arch, { capabilities: m.capabilities, onSkip });
}

function socketsOf(spec: LaunchSpec): SocketPlan[] {
  const { sockets } = spec.manifest;
  return Object.keys(sockets).sort().map((name) => ({ ...sockets[name], name, path: socketPath(spec.socketDir, spec.container, name) }));
}

function persistOf(spec: LaunchSpec): LaunchPlan['persist'] {
  const m = spec.manifest;
  if (!Object.values(m.mounts).some((x) => x.type === 'persist')) return undefined;
  return { dir: persistDir(spec), uid: m.uid, gid: m.gid };
}

/**
 * The whole start of `spec` on `host`. Which fds the launcher holds is part
 * of the spec (consoleFd, netnsFd): the plan numbers them and says where they
 * go. Throws start_container_failed / start_container_missing_resource for a
 * mount the host cannot serve.
 */
export function planLaunch(spec: LaunchSpec, host: LaunchHost): LaunchPlan {
  const m = spec.manifest;
  const notes: Note[] = [];
  const console = spec.consoleFd !== undefined;
  const netns = getsNewNetns(m) && spec.netnsFd !== undefined;
  const sockets = socketsOf(spec);
  const init: InitSpec = {
    name: spec.container,
    root: spec.root,
    net: networkOf(m, netns),
    mounts: planMounts(spec, host, notes),
    uid: m.uid,
    gid: m.gid,
    groups: resolveGroups(spec.container, m.suppl_groups, () => host.groupFile(), notes),
    rlimits: rlimitsOf(m),
    sched: schedOf(m.sched?.policy),
    caps: capabilityMask(m.capabilities),
    seccomp: seccompOf(m, host.arch, notes),
    selinuxExec: m.selinux?.exec !== undefined && host.selinux() ? m.selinux.exec : undefined,
    init: spec.init,
    args: spec.args,
    env: initEnv(spec, console, sockets),
    nfds: (console ? 1 : 0) + sockets.length,
    ...(host.test ? { test: host.test } : {}),
  };
  return { init, cloneFlags: cloneFlagsOf(init.net.mode), console, sockets, netns, persist: persistOf(spec), notes };
}
