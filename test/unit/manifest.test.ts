import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  CAPABILITIES, isResource, ManifestError, manifestToJson, manifestToJsonText, manifestToYaml, parseManifest,
  PERMISSIONS, validateManifest, type Manifest,
} from '../../src/model/manifest.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const specFile = ['/work/shared/spec/manifest.md', join(root, 'spec/manifest.md')].find((f) => existsSync(f));

/** The fenced YAML blocks of spec/manifest.md §2.1, by example path. */
function specExamples(): Record<string, string> {
  if (specFile === undefined) return {};
  const md = readFileSync(specFile, 'utf8');
  const out: Record<string, string> = {};
  for (const m of md.matchAll(/`(examples\/[^`]+\/manifest\.yaml)`\n```yaml\n([\s\S]*?)```/g)) out[m[1]!] = m[2]!;
  return out;
}

function exampleFiles(): Record<string, string> {
  const dir = join(root, 'examples');
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir)) {
    const f = join(dir, e, 'manifest.yaml');
    if (existsSync(f)) out[`examples/${e}/manifest.yaml`] = readFileSync(f, 'utf8');
  }
  return out;
}

const BASE = 'name: hello\nversion: 0.0.0\ninit: /binary\nuid: 1000\ngid: 1001\n';

function parseWith(extra: string, base = BASE): Manifest {
  return parseManifest(base + extra);
}

/** Asserts that parsing fails with a ManifestError whose message starts with the field and contains the rule. */
function rejects(text: string, field: string, rule: RegExp): void {
  assert.throws(
    () => parseManifest(text),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${String(e)}`);
      assert.equal(e.field, field, `field of "${e.message}"`);
      if (field !== '') assert.ok(e.message.startsWith(`${field}: `), `message "${e.message}" names ${field}`);
      assert.match(e.message, rule);
      return true;
    },
  );
}

function roundTrips(m: Manifest): void {
  assert.deepEqual(parseManifest(manifestToYaml(m)), m, 'YAML round trip');
  assert.deepEqual(parseManifest(JSON.stringify(manifestToJson(m))), m, 'JSON value round trip');
  assert.deepEqual(parseManifest(manifestToJsonText(m)), m, 'JSON text round trip');
}

describe('example manifests', () => {
  const spec = specExamples();
  it('finds both verbatim examples of spec/manifest.md', { skip: specFile === undefined && 'spec/manifest.md not found' }, () => {
    assert.deepEqual(Object.keys(spec).sort(), ['examples/hello-world/manifest.yaml', 'examples/test-container/manifest.yaml']);
  });

  for (const [name, text] of Object.entries({ ...spec, ...exampleFiles() })) {
    it(`${name} parses and round-trips through YAML and JSON unchanged`, () => {
      const m = parseManifest(text);
      roundTrips(m);
      // Serializing twice gives the same text (stable order).
      assert.equal(manifestToYaml(parseManifest(manifestToYaml(m))), manifestToYaml(m));
    });
  }

  it('reads the test-container example field by field', () => {
    const m = parseManifest(spec['examples/test-container/manifest.yaml'] ?? exampleFiles()['examples/hello-world/manifest.yaml']!);
    if (m.name !== 'test-container') return;
    assert.deepEqual(m.sched, { policy: { fifo: { priority: 11 } } });
    assert.deepEqual(m.mounts['/lib'], { type: 'bind', host: '/lib', options: ['nosuid', 'nodev'] });
    assert.deepEqual(m.mounts['/tmpfs'], { type: 'tmpfs', size: 20480000 });
    assert.deepEqual(m.mounts['/resource'], { type: 'resource', name: 'test-resource', version: '>=0.0.1', dir: '/', options: ['noexec', 'nosuid', 'nodev'] });
    assert.deepEqual(m.mounts['/unix-sockets'], { type: 'sockets' });
    assert.deepEqual(m.mounts['/data'], { type: 'persist' });
    assert.deepEqual(m.seccomp, { profile: 'default', allow: { delete_module: { args: { index: 1, values: [1n], mask: 6n } }, clone: 'any', clone3: 'any' } });
    assert.deepEqual(m.sockets['seq-packet'], { type: 'seq_packet', mode: 0o666, uid: 1000, gid: 1000, passcred: true });
    assert.deepEqual(m.sockets.no_permission, { type: 'datagram', mode: 0, passcred: false });
    assert.deepEqual(m.rlimits, { nproc: { soft: 10000, hard: 20000 } });
    assert.deepEqual(m.selinux, { mount_context: 'unconfined_u:object_r:user_home_t:s0', exec: 'unconfined_u:object_r:test_container_t:s0' });
    assert.deepEqual(m.io, { stdout: 'pipe', stderr: 'pipe' });
  });

  it('writes the test-container example with serde_yaml tags and option strings', () => {
    const text = spec['examples/test-container/manifest.yaml'];
    if (text === undefined) return;
    const yaml = manifestToYaml(parseManifest(text));
    assert.match(yaml, /^ {2}policy: !fifo\n {4}priority: 11$/m);
    assert.match(yaml, /^ {4}delete_module: !args\n {6}index: 1\n {6}values:\n {6}- 1\n {6}mask: 6$/m);
    assert.match(yaml, /^ {4}options: nosuid,nodev$/m);
    assert.match(yaml, /^ {4}version: '>=0\.0\.1'$/m);
    assert.doesNotMatch(yaml, /^(args|env|capabilities|suppl_groups):/m);
  });
});

describe('parsing', () => {
  it('fills in the defaults of a minimal manifest', () => {
    const m = parseManifest(BASE);
    assert.deepEqual(m, {
      name: 'hello', version: '0.0.0', init: '/binary', args: [], env: {}, uid: 1000, gid: 1001,
      mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {},
    });
    assert.equal(isResource(m), false);
  });

  it('reads a resource manifest (no init) as a resource container', () => {
    const m = parseManifest('name: message\nversion: 0.0.2\nuid: 1000\ngid: 1000\n');
    assert.equal(isResource(m), true);
    assert.equal(m.init, undefined);
  });

  it("reads Northstar's own parse test", () => {
    const m = parseManifest(`
name: hello
version: 0.0.0
init: /binary
args:
  - one
  - two
env:
  LD_LIBRARY_PATH: /lib
uid: 1000
gid: 1001
suppl_groups:
  - inet
  - log
capabilities:
  - CAP_NET_RAW
  - CAP_MKNOD
  - CAP_SYS_TIME
rlimits:
  nproc:
    soft: 1000
    hard: 1000
mounts:
  /dev:
    type: dev
  /tmp:
    type: tmpfs
    size: 42
  /lib:
    type: bind
    host: /lib
    options: rw
  /data:
    type: persist
  /resource:
    type: resource
    name: bla-blah.foo
    version: '>=1.0.0'
    dir: /bin/foo
    options: noexec
autostart: critical
seccomp:
  allow:
    fork: any
    waitpid: any
sockets:
  foo:
    type: stream
    mode: 0o600
    uid: 100
    gid: 1000
cgroups:
  memory:
    oom_monitor: true
    memory_hard_limit: 1000000
    memory_soft_limit: 1000000
    swappiness: 0
    attrs: {}
  cpu:
    cpus: 0,1
    shares: 1024
    attrs: {}
`);
    assert.deepEqual(m.args, ['one', 'two']);
    assert.deepEqual(m.env, { LD_LIBRARY_PATH: '/lib' });
    assert.equal(m.autostart, 'critical');
    assert.deepEqual(m.capabilities, ['CAP_NET_RAW', 'CAP_MKNOD', 'CAP_SYS_TIME']);
    assert.deepEqual(m.suppl_groups, ['inet', 'log']);
    assert.deepEqual(m.mounts['/lib'], { type: 'bind', host: '/lib', options: ['rw'] });
    assert.deepEqual(m.mounts['/tmp'], { type: 'tmpfs', size: 42 });
    assert.deepEqual(m.seccomp, { allow: { fork: 'any', waitpid: 'any' } });
    assert.deepEqual(m.sockets.foo, { type: 'stream', mode: 0o600, uid: 100, gid: 1000 });
    assert.deepEqual(m.cgroups, {
      memory: { oom_monitor: true, memory_hard_limit: 1000000, memory_soft_limit: 1000000, swappiness: 0, attrs: {} },
      cpu: { cpus: '0,1', shares: 1024, attrs: {} },
    });
    roundTrips(m);
  });

  it('reads tmpfs sizes as bytes or bytesize strings (100kB = 100000, 100MB = 1e8, 100GB = 1e11)', () => {
    const m = parseWith('mounts:\n  /a:\n    type: tmpfs\n    size: 100\n  /b:\n    type: tmpfs\n    size: 100kB\n  /c:\n    type: tmpfs\n    size: 100MB\n  /d:\n    type: tmpfs\n    size: 100GB\n');
    assert.deepEqual(Object.values(m.mounts).map((x) => (x.type === 'tmpfs' ? x.size : -1)), [100, 100000, 100000000, 100000000000]);
  });

  it('normalizes the version to major.minor.patch', () => {
    assert.equal(parseManifest(BASE.replace('0.0.0', '1.2.3-rc.1+build5')).version, '1.2.3');
  });

  it('reads console permissions as "full" or a list, and writes "full" back when all 15 are set', () => {
    const full = parseWith('console:\n  permissions: full\n');
    assert.deepEqual(full.console, { permissions: [...PERMISSIONS] });
    assert.deepEqual((manifestToJson(full) as { console: unknown }).console, { permissions: 'full' });
    assert.match(manifestToYaml(full), /^console:\n {2}permissions: full$/m);
    const list = parseWith('console:\n  permissions: [list, ident, list]\n');
    assert.deepEqual(list.console, { permissions: ['ident', 'list'] });
    const every = parseWith(`console:\n  permissions: [${[...PERMISSIONS].reverse().join(', ')}]\n`);
    assert.deepEqual((manifestToJson(every) as { console: unknown }).console, { permissions: 'full' });
    roundTrips(list);
    roundTrips(full);
  });

  it('reads every sched policy, tagged or as a single-key map', () => {
    const cases: [string, unknown][] = [
      ['policy: !other\n    nice: -20', { other: { nice: -20 } }],
      ['policy:\n    !batch\n      nice: 19', { batch: { nice: 19 } }],
      ['policy: !fifo {priority: 99}', { fifo: { priority: 99 } }],
      ['policy: !round_robin\n    priority: 1', { round_robin: { priority: 1 } }],
      ['policy: idle', 'idle'],
      ['policy: deadline', 'deadline'],
      ['policy:\n    fifo:\n      priority: 3', { fifo: { priority: 3 } }],
    ];
    for (const [yaml, policy] of cases) {
      const m = parseWith(`sched:\n  ${yaml}\n`);
      assert.deepEqual(m.sched, { policy }, yaml);
      roundTrips(m);
    }
    assert.match(manifestToYaml(parseWith('sched:\n  policy: idle\n')), /^sched:\n {2}policy: idle$/m);
  });

  it('reads network host and !namespace, and writes the namespace as a tag (YAML) or a map (JSON)', () => {
    assert.equal(parseWith('network: host\n').network, 'host');
    const ns = parseWith('network: !namespace container\n');
    assert.deepEqual(ns.network, { namespace: 'container' });
    assert.match(manifestToYaml(ns), /^network: !namespace container$/m);
    assert.deepEqual((manifestToJson(ns) as { network: unknown }).network, { namespace: 'container' });
    roundTrips(ns);
  });

  it('keeps u64 seccomp values above 2^53 exact in YAML and JSON text, and as strings in the JSON value', () => {
    const m = parseWith('seccomp:\n  allow:\n    ioctl: !args\n      index: 1\n      values: [18446744073709551615, 9007199254740993]\n      mask: 0xffffffffffffffff\n');
    const rule = m.seccomp?.allow?.ioctl;
    assert.deepEqual(rule, { args: { index: 1, values: [18446744073709551615n, 9007199254740993n], mask: 18446744073709551615n } });
    assert.match(manifestToYaml(m), /- 18446744073709551615\n\s+- 9007199254740993\n\s+mask: 18446744073709551615/);
    assert.match(manifestToJsonText(m), /"values":\[18446744073709551615,9007199254740993\],"mask":18446744073709551615/);
    const json = manifestToJson(m) as { seccomp: { allow: { ioctl: { args: unknown } } } };
    assert.deepEqual(json.seccomp.allow.ioctl.args, { index: 1, values: ['18446744073709551615', '9007199254740993'], mask: '18446744073709551615' });
    roundTrips(m);
  });

  it('reads a JSON manifest', () => {
    const m = parseManifest(JSON.stringify({
      name: 'json', version: '1.0.0', init: '/x', uid: 1, gid: 2,
      sched: { policy: { fifo: { priority: 5 } } }, network: { namespace: 'n' },
      seccomp: { allow: { read: 'any', write: { args: { index: 0, values: [1, 2] } } } },
      mounts: { '/tmp': { type: 'tmpfs', size: '1MB' } },
    }));
    assert.deepEqual(m.sched, { policy: { fifo: { priority: 5 } } });
    assert.deepEqual(m.network, { namespace: 'n' });
    assert.deepEqual(m.seccomp?.allow?.write, { args: { index: 0, values: [1n, 2n] } });
    assert.deepEqual(m.mounts['/tmp'], { type: 'tmpfs', size: 1_000_000 });
  });

  it('reads a TOML manifest', () => {
    const m = parseManifest(`
name = "toml"
version = "0.1.0"
init = "/toml"
uid = 1000
gid = 1000
args = ["a"]

[env]
KEY = "value"

[mounts."/proc"]
type = "proc"

[mounts."/lib"]
type = "bind"
host = "/lib"
options = "rw,nosuid"

[sched.policy.other]
nice = 5

[seccomp.allow]
read = "any"

[seccomp.allow.ioctl.args]
index = 2
mask = 7
`);
    assert.equal(m.name, 'toml');
    assert.deepEqual(m.args, ['a']);
    assert.deepEqual(m.env, { KEY: 'value' });
    assert.deepEqual(m.mounts['/lib'], { type: 'bind', host: '/lib', options: ['rw', 'nosuid'] });
    assert.deepEqual(m.sched, { policy: { other: { nice: 5 } } });
    assert.deepEqual(m.seccomp?.allow, { read: 'any', ioctl: { args: { index: 2, mask: 7n } } });
    roundTrips(m);
  });

  it('takes plain YAML scalars that look like numbers as strings where a string is expected', () => {
    const m = parseWith('env:\n  THREADS: 4\n  ON: true\nargs: [1, 2.50]\n');
    assert.deepEqual(m.env, { THREADS: '4', ON: 'true' });
    assert.deepEqual(m.args, ['1', '2.50']);
    const yaml = manifestToYaml(m);
    assert.match(yaml, /THREADS: '4'/);
    roundTrips(m);
  });

  it('keeps custom as any JSON value and returns it unchanged', () => {
    const m = parseWith('custom:\n  properties:\n    hello: again\n  list: [1, two, 3.5, null, true]\n');
    assert.deepEqual(m.custom, { properties: { hello: 'again' }, list: [1, 'two', 3.5, null, true] });
    roundTrips(m);
  });

  it('reads every cgroups controller and round-trips it', () => {
    const m = parseWith(`cgroups:
  parent: cpu-intense
  memory:
    oom_monitor: true
    memory_hard_limit: 10000000
    memory_swap_limit: -1
    swappiness: 0
    attrs:
      memory.foo: bar
  cpu:
    shares: 100
    quota: -1
    period: 100000
    cpus: '0'
  blkio:
    weight: 100
    weight_device: [{major: 8, minor: 0, weight: 10}]
    throttle_read_bps_device: [{major: 8, minor: 0, rate: 1000}]
    throttle_read_iops_device: []
    throttle_write_bps_device: []
    throttle_write_iops_device: []
`);
    assert.deepEqual(m.cgroups?.memory, { oom_monitor: true, memory_hard_limit: 10000000, memory_swap_limit: -1, swappiness: 0, attrs: { 'memory.foo': 'bar' } });
    assert.deepEqual(m.cgroups?.blkio?.weight_device, [{ major: 8, minor: 0, weight: 10 }]);
    assert.equal(m.cgroups?.parent, 'cpu-intense');
    roundTrips(m);
  });

  it('ignores unknown keys inside cgroups, as Northstar does (the obsolete limit_in_bytes)', () => {
    const m = parseWith('cgroups:\n  memory:\n    limit_in_bytes: 10000000\n    swappiness: 0\n');
    assert.deepEqual(m.cgroups, { memory: { oom_monitor: false, swappiness: 0, attrs: {} } });
  });

  it('accepts non-overlapping bind targets, including single-component neighbours', () => {
    const m = parseWith('mounts:\n  /other_lib1:\n    type: bind\n    host: /lib\n  /lib/non_overlapping1:\n    type: bind\n    host: /lib\n  /other_lib2:\n    type: bind\n    host: /lib\n  /lib/non_overlapping2:\n    type: bind\n    host: /lib\n  /lib64:\n    type: bind\n    host: /lib64\n');
    assert.equal(Object.keys(m.mounts).length, 5);
  });

  it('accepts a resource mount with rw (ignored at mount time) and an absolute dir', () => {
    const m = parseWith("mounts:\n  /foo:\n    type: resource\n    name: foo-bar.qwerty12\n    version: '>=0.0.1'\n    dir: /\n    options: rw,noexec,nosuid\n");
    assert.deepEqual(m.mounts['/foo'], { type: 'resource', name: 'foo-bar.qwerty12', version: '>=0.0.1', dir: '/', options: ['rw', 'noexec', 'nosuid'] });
  });

  it('stores resource requirements in Rust semver form: a bare version is caret, commas separate', () => {
    const m = parseWith("mounts:\n  /a:\n    type: resource\n    name: a\n    version: 1.2.3\n    dir: /\n  /b:\n    type: resource\n    name: b\n    version: '>= 1.0.0 ,<2.0.0'\n    dir: /\n");
    assert.equal(m.mounts['/a']?.type === 'resource' && m.mounts['/a'].version, '^1.2.3');
    assert.equal(m.mounts['/b']?.type === 'resource' && m.mounts['/b'].version, '>=1.0.0, <2.0.0');
    roundTrips(m);
  });

  it('reads what serde_yaml writes: unindented sequences, nulls inside cgroups, quoted numbers', () => {
    const m = parseManifest(`name: memeater
version: 0.0.1
console:
  permissions:
  - ident
  - list
init: /memeater
env:
  THREADS: '4'
uid: 1000
gid: 1000
sched:
  policy: !other
    nice: 0
cgroups:
  blkio: null
  cpu: null
  memory:
    oom_monitor: true
    kernel_memory_limit: null
    memory_hard_limit: 10000000
    memory_soft_limit: null
    kernel_tcp_memory_limit: null
    memory_swap_limit: null
    swappiness: 0
network: !namespace container
io:
  stdout: pipe
  stderr: discard
`);
    assert.deepEqual(m.cgroups, { memory: { oom_monitor: true, memory_hard_limit: 10000000, swappiness: 0, attrs: {} } });
    assert.deepEqual(m.console, { permissions: ['ident', 'list'] });
    assert.deepEqual(m.env, { THREADS: '4' });
    roundTrips(m);
  });

  it('accepts the limits themselves: 64 env entries, 64 groups, index 5, 50 values, 4096-character init', () => {
    const env = Array.from({ length: 64 }, (_, i) => `  K${i}: v`).join('\n');
    assert.equal(Object.keys(parseWith(`env:\n${env}\n`).env).length, 64);
    const groups = Array.from({ length: 64 }, (_, i) => `g${i}`).join(', ');
    assert.equal(parseWith(`suppl_groups: [${groups}]\n`).suppl_groups.length, 64);
    const values = Array.from({ length: 50 }, (_, i) => i).join(', ');
    parseWith(`seccomp:\n  allow:\n    read: !args\n      index: 5\n      values: [${values}]\n`);
    parseManifest(BASE.replace('/binary', '/' + 'b'.repeat(4095)));
  });

  it('accepts sockets with uid 0 (the >= 1 rule is not run for sockets)', () => {
    assert.equal(parseWith('sockets:\n  s:\n    type: stream\n    mode: 0o600\n    uid: 0\n').sockets.s?.uid, 0);
  });

  it('knows the 41 capabilities, with CAP_MKNOD', () => {
    assert.equal(CAPABILITIES.length, 41);
    assert.ok((CAPABILITIES as readonly string[]).includes('CAP_MKNOD'));
    assert.ok((CAPABILITIES as readonly string[]).includes('CAP_CHECKPOINT_RESTORE'));
  });
});

describe('rejected manifests name the field and the rule', () => {
  const nl = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join('\n');
  const cases: [string, string, string, RegExp][] = [
    ['uid 0 (root)', BASE.replace('uid: 1000', 'uid: 0'), 'uid', /root is not allowed/],
    ['gid 0 (root)', BASE.replace('gid: 1001', 'gid: 0'), 'gid', /root is not allowed/],
    ['uid above u16', BASE.replace('uid: 1000', 'uid: 65536'), 'uid', /out of range 0..=65535/],
    ['uid as a string', BASE.replace('uid: 1000', "uid: 'x'"), 'uid', /expected an integer/],
    ['a missing name', BASE.replace('name: hello\n', ''), 'name', /missing required field/],
    ['a missing uid', BASE.replace('uid: 1000\n', ''), 'uid', /missing required field/],
    ['bad name characters', BASE.replace('name: hello', 'name: hel/lo'), 'name', /only \[0-9A-Za-z._-\]/],
    ['a name with a colon', BASE.replace('name: hello', "name: 'a:b'"), 'name', /only/],
    ['an invalid version', BASE.replace('0.0.0', 'one'), 'version', /invalid version/],
    ['an unknown top-level field', BASE + 'foo: bar\n', 'foo', /unknown field/],
    ['an empty init', BASE.replace('/binary', "''"), 'init', /length must be 1..=4096/],
    ['an init longer than 4096 characters', BASE.replace('/binary', 'b'.repeat(4097)), 'init', /length must be 1..=4096/],
    ['65 env entries', BASE + `env:\n${nl(65, (i) => `  K${i}: v`)}\n`, 'env', /at most 64 entries/],
    ['an env key longer than 64 characters', BASE + `env:\n  ${'K'.repeat(65)}: v\n`, `env.${'K'.repeat(65)}`, /exceeds 64 bytes/],
    ['an env value longer than 1024 characters', BASE + `env:\n  K: ${'v'.repeat(1025)}\n`, 'env.K', /value exceeds 1024 bytes/],
    ['reserved env key NORTHSTAR_NAME', BASE + 'env:\n  NORTHSTAR_NAME: x\n', 'env.NORTHSTAR_NAME', /reserved/],
    ['reserved env key NORTHSTAR_CONSOLE', BASE + 'env:\n  NORTHSTAR_CONSOLE: "3"\n', 'env.NORTHSTAR_CONSOLE', /reserved/],
    ['a NUL in an argument', BASE + 'args: ["a\\0b"]\n', 'args[0]', /NUL/],
    ['an unknown console permission', BASE + 'console:\n  permissions: [fly]\n', 'console.permissions[0]', /unknown variant "fly"/],
    ['console permissions neither "full" nor a list', BASE + 'console:\n  permissions: most\n', 'console.permissions', /invalid console permission/],
    ['an unknown console field', BASE + 'console:\n  permissions: full\n  extra: 1\n', 'console.extra', /unknown field/],
    ['nice below -20', BASE + 'sched:\n  policy: !other\n    nice: -21\n', 'sched.policy.other.nice', /-20..=19/],
    ['batch nice above 19', BASE + 'sched:\n  policy: !batch\n    nice: 20\n', 'sched.policy.batch.nice', /-20..=19/],
    ['nice beyond i8', BASE + 'sched:\n  policy: !other\n    nice: 200\n', 'sched.policy.other.nice', /out of range -128..=127/],
    ['fifo priority 0', BASE + 'sched:\n  policy: !fifo\n    priority: 0\n', 'sched.policy.fifo.priority', /1..=99/],
    ['fifo priority 200', BASE + 'sched:\n  policy: !fifo\n    priority: 200\n', 'sched.policy.fifo.priority', /1..=99/],
    ['round_robin priority 0', BASE + 'sched:\n  policy: !round_robin\n    priority: 0\n', 'sched.policy.round_robin.priority', /1..=99/],
    ['round_robin priority 200', BASE + 'sched:\n  policy: !round_robin\n    priority: 200\n', 'sched.policy.round_robin.priority', /1..=99/],
    ['an unknown sched policy', BASE + 'sched:\n  policy: !lottery\n    tickets: 1\n', 'sched.policy', /unknown variant "lottery"/],
    ['a unit policy with a value', BASE + 'sched:\n  policy: !idle 3\n', 'sched.policy', /takes no value/],
    ['duplicate mount targets', BASE + 'mounts:\n  /dev:\n    type: dev\n  /dev:\n    type: dev\n', 'mounts./dev', /duplicate key/],
    ['a duplicate rlimit', BASE + 'rlimits:\n  nproc:\n    soft: 1\n  nproc:\n    soft: 2\n', 'rlimits.nproc', /duplicate key/],
    ['a duplicate top-level field', BASE + 'uid: 5\n', 'uid', /duplicate key/],
    ['overlapping bind targets', BASE + 'mounts:\n  /lib/overlapping:\n    type: bind\n    host: /lib\n  /lib/non_overlapping1:\n    type: bind\n    host: /lib\n  /lib/overlapping/foo:\n    type: bind\n    host: /lib\n', 'mounts./lib/overlapping/foo', /overlaps \/lib\/overlapping/],
    ['overlap hidden by a sibling that sorts between', BASE + 'mounts:\n  /lib:\n    type: bind\n    host: /lib\n  /lib-x:\n    type: bind\n    host: /lib\n  /lib/a:\n    type: bind\n    host: /lib\n', 'mounts./lib/a', /overlaps \/lib$/],
    ['a relative bind target', BASE + 'mounts:\n  lib:\n    type: bind\n    host: /lib\n', 'mounts.lib', /must be absolute/],
    ['rec on a resource', BASE + "mounts:\n  /r:\n    type: resource\n    name: r\n    version: '>=1.0.0'\n    dir: /\n    options: rec\n", 'mounts./r.options', /rec is not allowed on a resource/],
    ['a relative resource dir', BASE + "mounts:\n  /r:\n    type: resource\n    name: r\n    version: '>=1.0.0'\n    dir: bin/foo\n", 'mounts./r.dir', /must be absolute/],
    ['a bad resource version requirement', BASE + "mounts:\n  /r:\n    type: resource\n    name: r\n    version: 'not a req'\n    dir: /\n", 'mounts./r.version', /invalid version requirement/],
    ['a bad resource name', BASE + "mounts:\n  /r:\n    type: resource\n    name: 'a b'\n    version: '>=1.0.0'\n    dir: /\n", 'mounts./r.name', /only/],
    ['an unknown mount option', BASE + 'mounts:\n  /l:\n    type: bind\n    host: /lib\n    options: rw,fast\n', 'mounts./l.options', /invalid mount option "fast"/],
    ['an empty mount option', BASE + 'mounts:\n  /l:\n    type: bind\n    host: /lib\n    options: rw,,nodev\n', 'mounts./l.options', /invalid mount option ""/],
    ['an unknown mount type', BASE + 'mounts:\n  /x:\n    type: overlay\n', 'mounts./x.type', /unknown variant "overlay"/],
    ['a mount without type', BASE + 'mounts:\n  /x:\n    host: /lib\n', 'mounts./x.type', /missing required field/],
    ['an unknown field in a bind mount', BASE + 'mounts:\n  /l:\n    type: bind\n    host: /lib\n    flags: 1\n', 'mounts./l.flags', /unknown field/],
    ['a bad tmpfs size', BASE + 'mounts:\n  /t:\n    type: tmpfs\n    size: 10 parsecs\n', 'mounts./t.size', /unknown unit "parsecs"/],
    ['a bind mount without host', BASE + 'mounts:\n  /l:\n    type: bind\n', 'mounts./l.host', /missing required field/],
    ['an unknown autostart', BASE + 'autostart: always\n', 'autostart', /unknown variant "always"/],
    ['a network namespace longer than 256 characters', BASE + `network: !namespace ${'n'.repeat(257)}\n`, 'network.namespace', /exceeds 256/],
    ['an unknown network variant', BASE + 'network: bridge\n', 'network', /unknown variant "bridge"/],
    ['seccomp args index 6', BASE + 'seccomp:\n  allow:\n    delete_module: !args\n      index: 6\n      values: [1]\n', 'seccomp.allow.delete_module.args.index', /0..=5/],
    ['seccomp args without values or mask', BASE + 'seccomp:\n  allow:\n    delete_module: !args\n      index: 1\n', 'seccomp.allow.delete_module.args', /either 'values' or 'mask'/],
    ['51 seccomp values', BASE + `seccomp:\n  allow:\n    read: !args\n      index: 1\n      values: [${nl(51, (i) => String(i)).replaceAll('\n', ', ')}]\n`, 'seccomp.allow.read.args.values', /at most 50 values/],
    ['a seccomp value above u64', BASE + 'seccomp:\n  allow:\n    read: !args\n      index: 1\n      values: [18446744073709551616]\n', 'seccomp.allow.read.args.values[0]', /out of range/],
    ['an unknown seccomp field', BASE + 'seccomp:\n  deny:\n    read: any\n', 'seccomp.deny', /unknown field/],
    ['an unknown seccomp args field', BASE + 'seccomp:\n  allow:\n    read: !args\n      index: 1\n      mask: 1\n      op: eq\n', 'seccomp.allow.read.args.op', /unknown field/],
    ['an unknown seccomp profile', BASE + 'seccomp:\n  profile: strict\n', 'seccomp.profile', /unknown variant "strict"/],
    ['a bad seccomp rule', BASE + 'seccomp:\n  allow:\n    read: some\n', 'seccomp.allow.read', /unknown variant "some"/],
    ['a selinux context with @', BASE + 'selinux:\n  exec: fo@o\n', 'selinux.exec', /only \[A-Za-z0-9:_\]/],
    ['an empty selinux context', BASE + "selinux:\n  mount_context: ''\n", 'selinux.mount_context', /must not be empty/],
    ['a selinux context of 65536 characters', BASE + `selinux:\n  exec: ${'a'.repeat(65536)}\n`, 'selinux.exec', /shorter than 65536/],
    ['the old selinux context field', BASE + 'selinux:\n  context: foo\n', 'selinux.context', /unknown field/],
    ['an unknown capability', BASE + 'capabilities: [CAP_SYS_MKNOD]\n', 'capabilities[0]', /unknown variant "CAP_SYS_MKNOD"/],
    ['a duplicate capability', BASE + 'capabilities: [CAP_KILL, CAP_KILL]\n', 'capabilities', /duplicate entry "CAP_KILL"/],
    ['a duplicate supplementary group', BASE + 'suppl_groups: [foo, foo]\n', 'suppl_groups', /duplicate entry "foo"/],
    ['65 supplementary groups', BASE + `suppl_groups: [${nl(65, (i) => `g${i}`).replaceAll('\n', ', ')}]\n`, 'suppl_groups', /at most 64 groups/],
    ['a supplementary group longer than 64 characters', BASE + `suppl_groups: [${'l'.repeat(65)}]\n`, 'suppl_groups[0]', /exceeds 64 bytes/],
    ['a NUL in a supplementary group', BASE + 'suppl_groups: ["fo\\0o"]\n', 'suppl_groups[0]', /NUL/],
    ['an unknown rlimit resource', BASE + 'rlimits:\n  files:\n    soft: 1\n', 'rlimits.files', /unknown variant "files"/],
    ['a negative rlimit', BASE + 'rlimits:\n  nofile:\n    soft: -1\n', 'rlimits.nofile.soft', /out of range/],
    ['an unknown socket type', BASE + 'sockets:\n  s:\n    type: raw\n    mode: 0o600\n', 'sockets.s.type', /unknown variant "raw"/],
    ['a socket without mode', BASE + 'sockets:\n  s:\n    type: stream\n', 'sockets.s.mode', /missing required field/],
    ['an unknown socket field', BASE + 'sockets:\n  s:\n    type: stream\n    mode: 1\n    owner: me\n', 'sockets.s.owner', /unknown field/],
    ['io without stderr', BASE + 'io:\n  stdout: pipe\n', 'io.stderr', /missing required field/],
    ['an unknown io output', BASE + 'io:\n  stdout: pipe\n  stderr: file\n', 'io.stderr', /unknown variant "file"/],
    ['blkio without its device lists', BASE + 'cgroups:\n  blkio:\n    weight: 10\n', 'cgroups.blkio.weight_device', /missing required field/],
    ['a resource with args', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nargs: [a]\n', 'args', /resource container/],
    ['a resource with env', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nenv:\n  A: b\n', 'env', /resource container/],
    ['a resource with autostart', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nautostart: relaxed\n', 'autostart', /resource container/],
    ['a resource with cgroups', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\ncgroups: {}\n', 'cgroups', /resource container/],
    ['a resource with seccomp', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nseccomp:\n  profile: default\n', 'seccomp', /resource container/],
    ['a resource with capabilities', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\ncapabilities: [CAP_KILL]\n', 'capabilities', /resource container/],
    ['a resource with suppl_groups', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nsuppl_groups: [a]\n', 'suppl_groups', /resource container/],
    ['a resource with io', 'name: r\nversion: 0.0.1\nuid: 1\ngid: 1\nio:\n  stdout: pipe\n  stderr: pipe\n', 'io', /resource container/],
    ['text that is no manifest at all', '{{{ not: [valid', '', /not a YAML, JSON or TOML manifest/],
    ['a YAML sequence', '- a\n- b\n', '', /not a YAML, JSON or TOML manifest/],
  ];
  for (const [what, text, field, rule] of cases) {
    it(`rejects ${what}`, () => rejects(text, field, rule));
  }
});

describe('validateManifest', () => {
  it('accepts a parsed manifest and rejects one changed in code, naming the field', () => {
    const m = parseManifest(BASE);
    validateManifest(m);
    assert.throws(() => validateManifest({ ...m, uid: 0 }), /^ManifestError: uid: /);
    assert.throws(() => validateManifest({ ...m, version: '1.0' }), /^ManifestError: version: /);
    assert.throws(() => validateManifest({ ...m, env: { NORTHSTAR_VERSION: '1' } }), /env\.NORTHSTAR_VERSION: reserved/);
    assert.throws(() => validateManifest({ ...m, capabilities: ['CAP_NOPE'] }), /capabilities\[0\]: unknown capability/);
    assert.throws(() => validateManifest({ ...m, init: undefined, args: ['x'] }), /args: a resource container/);
  });

  it('rejects a resource manifest with args given in code (issue 2 example)', () => {
    const m = parseManifest('name: r\nversion: 0.0.1\nuid: 1\ngid: 1\n');
    assert.throws(() => validateManifest({ ...m, args: ['--x'] }), ManifestError);
  });
});

describe('serialization', () => {
  it('omits None and empty collections, and keeps struct field order', () => {
    const yaml = manifestToYaml(parseManifest(BASE));
    assert.equal(yaml, 'name: hello\nversion: 0.0.0\ninit: /binary\nuid: 1000\ngid: 1001\n');
    assert.deepEqual(manifestToJson(parseManifest(BASE)), { name: 'hello', version: '0.0.0', init: '/binary', uid: 1000, gid: 1001 });
  });

  it('writes YAML that a plain YAML 1.2 reader sees with the same structure as the JSON form', () => {
    const text = specExamples()['examples/test-container/manifest.yaml'] ?? exampleFiles()['examples/sockets/manifest.yaml']!;
    const m = parseManifest(text);
    // Tags aside, the YAML and the JSON carry the same data.
    const plain = parseYaml(manifestToYaml(m).replace(/!(fifo|args|namespace)\b/g, ''), { intAsBigInt: false }) as Record<string, unknown>;
    const json = manifestToJson(m) as Record<string, unknown>;
    assert.deepEqual(Object.keys(plain), Object.keys(json));
  });

  it('writes mount options in a fixed order and skips empty ones', () => {
    const m = parseWith('mounts:\n  /l:\n    type: bind\n    host: /lib\n    options: " nodev , rw,nosuid "\n  /k:\n    type: bind\n    host: /lib64\n    options: ""\n');
    assert.deepEqual(m.mounts['/l'], { type: 'bind', host: '/lib', options: ['rw', 'nosuid', 'nodev'] });
    const json = manifestToJson(m) as { mounts: Record<string, unknown> };
    assert.deepEqual(json.mounts['/l'], { type: 'bind', host: '/lib', options: 'rw,nosuid,nodev' });
    assert.deepEqual(json.mounts['/k'], { type: 'bind', host: '/lib64' });
  });

  it('quotes strings that YAML would otherwise read as numbers, booleans or null', () => {
    const m = parseWith("env:\n  A: '1'\n  B: 'true'\n  C: 'null'\n  D: '0o7'\n  E: '1.5'\n  F: '0b101'\n  G: 'yes'\n  H: '~'\n  I: '1_000'\n");
    const yaml = manifestToYaml(m);
    const back = parseManifest(yaml);
    assert.deepEqual(back.env, { A: '1', B: 'true', C: 'null', D: '0o7', E: '1.5', F: '0b101', G: 'yes', H: '~', I: '1_000' });
    for (const k of 'ABCDEFGHI') assert.match(yaml, new RegExp(`^  ${k}: '`, 'm'), `${k} is quoted`);
  });

  it('keeps an env variable named __proto__ as data', () => {
    const m = parseWith('env:\n  __proto__: x\n');
    assert.deepEqual(Object.keys(m.env), ['__proto__']);
    assert.equal(Object.getPrototypeOf(m.env), Object.prototype);
    roundTrips(m);
  });
});
