// The launch plan (machines/launch-plan.ts, sandbox-plan.ts) as data: a
// manifest, the fds the launcher holds and a host given as a table in, the
// whole start out (init's spec with mounts, seccomp, net mode and fd
// numbers; clone flags; sockets; persist directory; log notes). No root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { LaunchSpec } from '../../src/machines/contracts.js';
import { launchNeeds, planLaunch, type InitSpec, type LaunchHost, type LaunchPlan } from '../../src/machines/launch-plan.js';
import {
  capabilityMask, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, planMounts, resolveGroups, schedOf, type Note,
} from '../../src/machines/sandbox-plan.js';
import type { Manifest } from '../../src/model/manifest.js';
import { compileSeccomp } from '../../src/model/seccomp.js';
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS } from '../../src/native-api/process.js';

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    name: 'test-container', version: '0.0.1', init: '/probe', args: [], env: {}, uid: 1000, gid: 1000,
    mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {}, ...over,
  };
}

function spec(m: Manifest, over: Partial<LaunchSpec> = {}): LaunchSpec {
  const container = `${m.name}:${m.version}`;
  return {
    container, manifest: m, root: `/run/${container}`, init: '/probe', args: [],
    env: { NORTHSTAR_NAME: m.name, NORTHSTAR_VERSION: m.version, NORTHSTAR_CONTAINER: container },
    runDir: '/run', dataDir: '/data', socketDir: '/sockets', resources: {}, ...over,
  };
}

/** A host from a table: the paths it has (default: all), its group file, SELinux; records what was asked. */
function host(o: { paths?: string[]; groups?: string; selinux?: boolean } & Pick<LaunchHost, 'arch' | 'test'> = {}) {
  const asked: string[] = [];
  const view: LaunchHost = {
    exists: (p) => o.paths === undefined || o.paths.includes(p),
    groupFile: () => (asked.push('groups'), o.groups ?? ''),
    selinux: () => (asked.push('selinux'), o.selinux ?? false),
    ...(o.arch ? { arch: o.arch } : {}),
    ...(o.test ? { test: o.test } : {}),
  };
  return Object.assign(view, { asked });
}
const all = host();

const NS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
const ENV = ['NORTHSTAR_NAME=test-container', 'NORTHSTAR_VERSION=0.0.1', 'NORTHSTAR_CONTAINER=test-container:0.0.1'];
const seccomp = { profile: 'default' } as const;

interface Row {
  name: string;
  manifest: Partial<Manifest>;
  spec?: Partial<LaunchSpec>;
  host?: ReturnType<typeof host>;
  /** The plan's fields that this row is about (init's separately). */
  plan: Partial<Omit<LaunchPlan, 'init'>>;
  init: Partial<InitSpec>;
}

const rows: Row[] = [
  {
    name: 'no network entry and no prepared namespace: the clone makes one',
    manifest: {},
    plan: { cloneFlags: NS | CLONE_NEWNET, console: false, sockets: [], netns: false, persist: undefined, notes: [] },
    init: { net: { mode: 'new' }, mounts: [], env: ENV, nfds: 0, seccomp: undefined, caps: 0n, groups: [] },
  },
  {
    name: 'a prepared namespace replaces the one the clone would make',
    manifest: {},
    spec: { netnsFd: 9 },
    plan: { cloneFlags: NS, netns: true },
    init: { net: { mode: 'fd' } },
  },
  {
    name: 'a host network ignores a prepared namespace',
    manifest: { network: 'host' },
    spec: { netnsFd: 9 },
    plan: { cloneFlags: NS, netns: false },
    init: { net: { mode: 'host' } },
  },
  {
    name: 'a named namespace is joined by init',
    manifest: { network: { namespace: 'blue' } },
    plan: { cloneFlags: NS, netns: false },
    init: { net: { mode: 'join', name: 'blue' } },
  },
  {
    name: 'the console is fd 3, the sockets follow by name',
    manifest: { console: { permissions: [] }, sockets: { b: { type: 'stream', mode: 0o600 }, a: { type: 'datagram', mode: 0o666, uid: 5 } } },
    spec: { consoleFd: 12 },
    plan: {
      console: true,
      sockets: [
        { type: 'datagram', mode: 0o666, uid: 5, name: 'a', path: '/sockets/test-container:0.0.1:a' },
        { type: 'stream', mode: 0o600, name: 'b', path: '/sockets/test-container:0.0.1:b' },
      ],
    },
    init: { env: [...ENV, 'NORTHSTAR_CONSOLE=3', 'NORTHSTAR_SOCKET_a=4', 'NORTHSTAR_SOCKET_b=5'], nfds: 3 },
  },
  {
    name: 'a console the runtime did not open is not passed: sockets start at 3',
    manifest: { console: { permissions: [] }, sockets: { s: { type: 'seq_packet', mode: 0o600 } } },
    plan: { console: false },
    init: { env: [...ENV, 'NORTHSTAR_SOCKET_s=3'], nfds: 1 },
  },
  {
    name: 'seccomp is compiled for the host architecture with the manifest capabilities',
    manifest: { seccomp, capabilities: ['CAP_SYS_MODULE'] },
    host: host({ arch: 'x86_64' }),
    plan: { notes: [] },
    init: { seccomp: compileSeccomp(seccomp, 'x86_64', { capabilities: ['CAP_SYS_MODULE'] }), caps: 1n << 16n },
  },
  {
    name: 'seccomp for another architecture, a name it lacks noted',
    manifest: { seccomp: { allow: { read: 'any', arch_prctl: 'any' } } },
    host: host({ arch: 'aarch64' }),
    plan: { notes: [{ logger: 'seccomp', level: 'debug', text: 'seccomp.allow: skipping arch_prctl, not a syscall on aarch64' }] },
    init: { seccomp: compileSeccomp({ allow: { read: 'any' } }, 'aarch64', { capabilities: [] }) },
  },
  {
    name: 'a persist mount: its directory made for the container ids, bound nodev nosuid noexec',
    manifest: { uid: 10, gid: 20, mounts: { '/data': { type: 'persist' } } },
    plan: { persist: { dir: '/data/test-container', uid: 10, gid: 20 } },
    init: {
      uid: 10, gid: 20,
      mounts: [
        { flags: MS_BIND, source: '/data/test-container', target: '/data', fstype: '', data: '' },
        { flags: MS_REMOUNT | MS_BIND | MS_NODEV | MS_NOSUID | MS_NOEXEC, source: '', target: '/data', fstype: '', data: '' },
      ],
    },
  },
  {
    name: 'a missing bind source is skipped with a note; a resource is bound from inside its image',
    manifest: {
      mounts: {
        '/lib64': { type: 'bind', host: '/lib64', options: [] },
        '/r': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/share', options: [] },
      },
    },
    spec: { resources: { '/r': '/run/res:1.0.0/share' } },
    host: host({ paths: ['/run/res:1.0.0/share'] }),
    plan: { notes: [{ logger: 'sandbox', level: 'debug', text: 'test-container:0.0.1: skipping bind mount of missing /lib64' }] },
    init: {
      mounts: [
        { flags: MS_BIND, source: '/share', target: '/r', fstype: '', data: '', sourceRoot: '/run/res:1.0.0' },
        { flags: MS_REMOUNT | MS_BIND | MS_RDONLY, source: '', target: '/r', fstype: '', data: '' },
      ],
    },
  },
  {
    name: 'groups, rlimits, sched and SELinux from the manifest and the host',
    manifest: {
      suppl_groups: ['inet', 'nope'], rlimits: { nproc: { soft: 10000, hard: 20000 }, core: {} },
      sched: { policy: { fifo: { priority: 11 } } }, selinux: { exec: 'u:r:app:s0' },
    },
    host: host({ groups: 'root:x:0:\ninet:x:3003:a,b\n', selinux: true, test: 3 }),
    plan: { notes: [{ logger: 'sandbox', level: 'warn', text: 'test-container:0.0.1: skipping unknown supplementary group nope' }] },
    init: {
      groups: [3003], rlimits: [{ resource: 6, soft: 10000, hard: 20000 }, { resource: 4, soft: undefined, hard: undefined }],
      sched: { policy: 1, priority: 11 }, selinuxExec: 'u:r:app:s0', test: 3,
    },
  },
];

describe('the launch plan of a manifest', () => {
  for (const row of rows) {
    it(row.name, () => {
      const p = planLaunch(spec(manifest(row.manifest), row.spec), row.host ?? all);
      const { init, ...rest } = p;
      for (const [k, v] of Object.entries(row.plan)) assert.deepEqual(rest[k as keyof typeof rest], v, `plan.${k}`);
      for (const [k, v] of Object.entries(row.init)) assert.deepEqual(init[k as keyof InitSpec], v, `init.${k}`);
    });
  }

  it('is complete for the smallest manifest', () => {
    assert.deepEqual(planLaunch(spec(manifest()), all).init, {
      name: 'test-container:0.0.1', root: '/run/test-container:0.0.1', net: { mode: 'new' }, mounts: [], uid: 1000, gid: 1000,
      groups: [], rlimits: [], sched: undefined, caps: 0n, seccomp: undefined, selinuxExec: undefined, init: '/probe', args: [],
      env: ENV, nfds: 0,
    });
  });

  it('asks the host only what the manifest needs', () => {
    const h = host();
    planLaunch(spec(manifest({ mounts: { '/proc': { type: 'proc' } } })), h);
    assert.deepEqual(h.asked, [], 'no group file, no SELinux probe');
    planLaunch(spec(manifest({ mounts: { '/dev': { type: 'dev' } }, selinux: { exec: 'x' } })), h);
    assert.deepEqual(h.asked, ['groups', 'selinux']);
  });

  it('says what the runtime opens before the launch', () => {
    assert.deepEqual(launchNeeds(manifest(), true), { console: false, netns: true });
    assert.deepEqual(launchNeeds(manifest({ console: { permissions: [] }, network: 'host' }), true), { console: true, netns: false });
    assert.deepEqual(launchNeeds(manifest({ console: { permissions: [] } }), false), { console: false, netns: true });
  });
});

describe('the mount list', () => {
  it('is planned parents first with Northstar flags for each type', () => {
    const m = manifest({
      mounts: {
        '/tmpfs': { type: 'tmpfs', size: 20480000 },
        '/proc': { type: 'proc' },
        '/dev': { type: 'dev' },
        '/data': { type: 'persist' },
        '/lib': { type: 'bind', host: '/lib', options: ['nosuid', 'nodev'] },
        '/lib/x': { type: 'bind', host: '/x', options: ['rw', 'rec', 'nosuid'] },
        '/sys': { type: 'sysfs' },
        '/unix-sockets': { type: 'sockets' },
        '/resource': { type: 'resource', name: 'r', version: '>=0.0.1', dir: '/', options: ['nosuid', 'nodev', 'noexec', 'rw'] },
      },
    });
    const ops = planMounts(spec(m, { resources: { '/resource': '/run/r:0.0.1/' } }), all);
    assert.deepEqual(ops, [
      { flags: MS_BIND, source: '/data/test-container', target: '/data', fstype: '', data: '' },
      { flags: MS_REMOUNT | MS_BIND | MS_NODEV | MS_NOSUID | MS_NOEXEC, source: '', target: '/data', fstype: '', data: '' },
      { flags: MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'tmpfs', target: '/dev', fstype: 'tmpfs', data: 'mode=755,size=65536' },
      ...['full', 'null', 'random', 'tty', 'urandom', 'zero'].map((n) => ({ flags: MS_BIND, source: `/dev/${n}`, target: `/dev/${n}`, fstype: '', data: '' })),
      { flags: MS_NOSUID | MS_NOEXEC, source: 'devpts', target: '/dev/pts', fstype: 'devpts', data: 'newinstance,ptmxmode=0666,mode=0620' },
      { symlink: 'pts/ptmx', target: '/dev/ptmx' },
      { symlink: '/proc/self/fd', target: '/dev/fd' },
      { symlink: '/proc/self/fd/0', target: '/dev/stdin' },
      { symlink: '/proc/self/fd/1', target: '/dev/stdout' },
      { symlink: '/proc/self/fd/2', target: '/dev/stderr' },
      { flags: MS_BIND, source: '/lib', target: '/lib', fstype: '', data: '' },
      { flags: MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_RDONLY, source: '', target: '/lib', fstype: '', data: '' },
      { flags: MS_BIND | MS_REC, source: '/x', target: '/lib/x', fstype: '', data: '' },
      { flags: MS_REMOUNT | MS_BIND | MS_REC | MS_NOSUID, source: '', target: '/lib/x', fstype: '', data: '' },
      { flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'proc', target: '/proc', fstype: 'proc', data: '' },
      { flags: MS_BIND, source: '/', target: '/resource', fstype: '', data: '', sourceRoot: '/run/r:0.0.1' },
      { flags: MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, source: '', target: '/resource', fstype: '', data: '' },
      { flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'sysfs', target: '/sys', fstype: 'sysfs', data: '' },
      { flags: MS_NODEV | MS_NOSUID | MS_NOEXEC, source: 'tmpfs', target: '/tmpfs', fstype: 'tmpfs', data: 'size=20480000,mode=1777' },
      { flags: MS_BIND, source: '/sockets', target: '/unix-sockets', fstype: '', data: '' },
    ]);
  });

  it('gives a dev mount the tty group as devpts gid and only the host nodes that exist', () => {
    const m = manifest({ mounts: { '/dev': { type: 'dev' } } });
    const nodes = ['/dev/full', '/dev/null', '/dev/random', '/dev/urandom', '/dev/zero'];
    const ops = planMounts(spec(m), host({ paths: nodes, groups: 'root:x:0:\ntty:x:5:\n' }));
    assert.ok(!ops.some((o) => o.target === '/dev/tty'));
    assert.ok(ops.some((o) => 'data' in o && o.data === 'newinstance,ptmxmode=0666,mode=0620,gid=5'));
    assert.ok(!ops.some((o) => o.target === '/dev/fd'), 'the fd links only come with a /proc mount');
  });

  it('refuses a resource directory outside the run directory', () => {
    const m = manifest({ mounts: { '/r': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/', options: [] } } });
    assert.throws(() => planMounts(spec(m, { resources: { '/r': '/tmp/elsewhere' } }), all), /not inside the run directory/);
  });

  it('skips bind mounts of host paths that do not exist', () => {
    const m = manifest({ mounts: { '/lib64': { type: 'bind', host: '/lib64', options: [] } } });
    assert.deepEqual(planMounts(spec(m), host({ paths: [] })), []);
  });

  it('makes a resource without a resolved host directory start_container_missing_resource', () => {
    const m = manifest({ mounts: { '/r': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/', options: [] } } });
    assert.throws(() => planLaunch(spec(m), all), (e: { code?: string; fields?: unknown }) =>
      e.code === 'start_container_missing_resource' && JSON.stringify(e.fields) === '{"container":"test-container:0.0.1","resource":"res","version":">=1.0.0"}');
  });

  it('refuses a mount target that is relative or climbs out of the root', () => {
    for (const target of ['relative', '/a/../../etc', '/..']) {
      const m = manifest({ mounts: { [target]: { type: 'proc' } } });
      assert.throws(() => planMounts(spec(m), all), /invalid mount target/);
    }
  });
});

describe('ids, capabilities and scheduling', () => {
  it('maps capability names to their kernel numbers and refuses unknown names', () => {
    assert.equal(capabilityMask([]), 0n);
    assert.equal(capabilityMask(['CAP_CHOWN', 'CAP_KILL', 'CAP_MKNOD', 'CAP_CHECKPOINT_RESTORE']), (1n << 0n) | (1n << 5n) | (1n << 27n) | (1n << 40n));
    assert.throws(() => capabilityMask(['CAP_SYS_MKNOD']), /unknown capability CAP_SYS_MKNOD/);
  });

  it('maps sched policies to SCHED_* with priority or nice', () => {
    assert.equal(schedOf(undefined), undefined);
    assert.deepEqual(schedOf({ fifo: { priority: 11 } }), { policy: 1, priority: 11 });
    assert.deepEqual(schedOf({ round_robin: { priority: 2 } }), { policy: 2, priority: 2 });
    assert.deepEqual(schedOf({ other: { nice: -3 } }), { policy: 0, priority: 0, nice: -3 });
    assert.deepEqual(schedOf({ batch: { nice: 4 } }), { policy: 3, priority: 0, nice: 4 });
    assert.deepEqual(schedOf('idle'), { policy: 5, priority: 0 });
    assert.deepEqual(schedOf('deadline'), { policy: 6, priority: 0 });
  });

  it('resolves supplementary groups through the group file and skips unknown names', () => {
    const notes: Note[] = [];
    assert.deepEqual(resolveGroups('c:0.0.1', ['inet', 'nope', 'src'], () => 'root:x:0:\nsrc:x:40:\ninet:x:3003:a,b\n', notes), [3003, 40]);
    assert.deepEqual(notes.map((n) => n.text), ['c:0.0.1: skipping unknown supplementary group nope']);
  });
});
