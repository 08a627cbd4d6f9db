// Generated manifests (seeded, so a failure reproduces) must survive
// parse(serialize(m)) unchanged through YAML, the JSON value and the JSON text.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  CAPABILITIES, manifestToJson, manifestToJsonText, manifestToYaml, MOUNT_OPTIONS, parseManifest, PERMISSIONS,
  RLIMIT_RESOURCES, validateManifest, type Manifest, type Mount, type MountOption,
} from '../../src/model/manifest.js';

function rng(seed: number): () => number {
  // mulberry32
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gen(seed: number): Manifest {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const maybe = (p = 0.5) => r() < p;
  const some = <T>(xs: readonly T[]) => xs.filter(() => maybe(0.3));
  const STRINGS = ['plain', '4', 'true', 'null', 'a: b', '#x', "it's", 'multi\nline', ' lead', 'ünï', '0x1f', 'yes', '', '-', '[x]', '{y}', '*a', '!t', '%p', '@at', '`tick`', '1.0', '~'];
  const word = () => pick(STRINGS.filter((s) => s !== '')) + (maybe() ? String(int(0, 99)) : '');
  const opts = (): MountOption[] => MOUNT_OPTIONS.filter((o) => o !== 'rec' && maybe(0.4));
  const resource = !maybe(0.85);
  const m: Manifest = {
    name: `c${int(0, 999)}.${pick(['a', 'b-c', 'd_e'])}`,
    version: `${int(0, 9)}.${int(0, 9)}.${int(0, 99)}`,
    args: resource ? [] : Array.from({ length: int(0, 3) }, word),
    env: {},
    uid: int(1, 65535),
    gid: int(1, 65535),
    mounts: {},
    capabilities: resource ? [] : some(CAPABILITIES),
    suppl_groups: resource ? [] : some(['audio', 'video', 'inet', 'log']),
    rlimits: {},
    sockets: {},
  };
  if (!resource) m.init = `/bin/${word().replace(/\0/g, '')}`;
  if (!resource) for (let i = int(0, 4); i > 0; i--) m.env[`K${i}_${int(0, 9)}`] = maybe(0.1) ? '' : word();
  if (maybe()) m.console = { permissions: maybe(0.3) ? [...PERMISSIONS] : some(PERMISSIONS) };
  if (maybe()) {
    m.sched = { policy: pick([
      { other: { nice: int(-20, 19) } }, { batch: { nice: int(-20, 19) } }, { fifo: { priority: int(1, 99) } },
      { round_robin: { priority: int(1, 99) } }, 'idle', 'deadline',
    ] as const) };
  }
  const mounts: [string, Mount][] = [
    ['/dev', { type: 'dev' }], ['/proc', { type: 'proc' }], ['/sys', { type: 'sysfs' }], ['/data', { type: 'persist' }],
    ['/unix-sockets', { type: 'sockets' }], ['/tmp', { type: 'tmpfs', size: int(0, 2 ** 40) }],
    ['/lib', { type: 'bind', host: '/lib', options: opts() }], ['/opt/x y', { type: 'bind', host: '/opt', options: opts() }],
    ['/res', { type: 'resource', name: 'message', version: pick(['>=0.0.1', '^1.2.3', '>=1.0.0, <2.0.0', '~0.1', '*']), dir: pick(['/', '/bin']), options: opts() }],
  ];
  for (const [t, mount] of mounts) if (maybe(0.4)) m.mounts[t] = mount;
  if (!resource && maybe()) m.autostart = pick(['relaxed', 'critical'] as const);
  if (!resource && maybe()) {
    m.cgroups = {};
    if (maybe()) m.cgroups.parent = 'p';
    if (maybe()) m.cgroups.memory = { oom_monitor: maybe(), memory_hard_limit: int(-1, 1e9), attrs: maybe() ? { 'memory.x': word() } : {} };
    if (maybe()) m.cgroups.cpu = { shares: int(2, 1024), cpus: '0-1', attrs: {} };
    if (maybe()) {
      m.cgroups.blkio = {
        weight: int(10, 1000), weight_device: [{ major: 8, minor: int(0, 15), leaf_weight: 5 }],
        throttle_read_bps_device: [], throttle_read_iops_device: [{ major: 8, minor: 0, rate: int(1, 1e6) }],
        throttle_write_bps_device: [], throttle_write_iops_device: [], attrs: {},
      };
    }
  }
  if (maybe()) m.network = maybe() ? 'host' : { namespace: `ns${int(0, 9)}` };
  if (!resource && maybe()) {
    m.seccomp = {};
    if (maybe()) m.seccomp.profile = 'default';
    if (maybe()) {
      const big = () => BigInt(int(0, 2 ** 31)) * BigInt(int(0, 2 ** 31)) * BigInt(int(1, 4));
      m.seccomp.allow = { read: 'any', ioctl: { args: { index: int(0, 5), values: [big(), 1n], mask: big() } } };
      if (maybe()) m.seccomp.allow.mmap = { args: { index: 2, mask: 0xffffffffffffffffn } };
    }
  }
  if (maybe()) m.selinux = maybe() ? { exec: 'u:r:t:s0' } : { mount_context: 'system_u:object_r:x_t:s0', exec: 'a_b' };
  for (const res of some(RLIMIT_RESOURCES)) m.rlimits[res] = maybe() ? { soft: int(0, 1e6) } : { soft: int(0, 10), hard: int(10, 1e9) };
  if (maybe()) m.sockets.hello = { type: pick(['stream', 'datagram', 'seq_packet'] as const), mode: int(0, 0o777), ...(maybe() ? { uid: int(0, 5000), passcred: maybe() } : {}) };
  if (!resource && maybe()) m.io = { stdout: pick(['discard', 'pipe', 'inherit'] as const), stderr: pick(['discard', 'pipe', 'inherit'] as const) };
  if (maybe(0.3)) m.custom = { s: word(), n: int(-5, 5), f: 1.5, l: [true, null, word()], o: { deep: { er: word() } } };
  return m;
}

it('150 generated manifests round-trip through YAML, the JSON value and the JSON text unchanged', () => {
  for (let seed = 1; seed <= 150; seed++) {
    const generated = gen(seed);
    validateManifest(generated);
    // The generator writes fields in its own order; parsing normalizes it once.
    const m = parseManifest(manifestToYaml(generated));
    const yaml = manifestToYaml(m);
    assert.deepEqual(parseManifest(yaml), m, `seed ${seed} (YAML):\n${yaml}`);
    assert.deepEqual(parseManifest(JSON.stringify(manifestToJson(m))), m, `seed ${seed} (JSON value)`);
    assert.deepEqual(parseManifest(manifestToJsonText(m)), m, `seed ${seed} (JSON text)`);
    assert.equal(manifestToYaml(parseManifest(yaml)), yaml, `seed ${seed}: serializing is stable`);
  }
});
