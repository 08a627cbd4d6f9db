// The restart policy and health checks (manifest `restart`, `health`) with
// real containers: crashes restarted with backoff and given up past
// max_restarts, a failing health check restarting its container, a stop
// during the backoff cancelling the restart, and a daemon killed with
// SIGKILL during a backoff leaving nothing that runs twice.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test, type TestContext } from 'node:test';

import { Client, type Notification } from '../../src/client/index.js';
import { privileged } from './privileged.js';
import { probe, until } from './runtime-checks.js';
import { startDaemon, startRuntime, type Harness } from './runtime-harness.js';

type Obj = Record<string, unknown>;
const obj = (n: Notification) => (typeof n === 'object' ? (n as Obj) : {});

/** A client that opted in to the supervision notifications, recording them all. */
async function supervisionFeed(t: TestContext, h: Harness) {
  const client = await Client.connect(h.url, { subscribe: 10_000, extensions: ['supervision'] });
  t.after(() => client.close());
  const seen: Notification[] = [];
  void (async () => {
    try {
      for await (const n of client.notifications()) seen.push(n);
    } catch {
      // closed
    }
  })();
  return {
    seen,
    /** The nth (1-based) notification of `kind` about `id`. */
    async nth(kind: string, id: string, n = 1, ms = 20_000): Promise<unknown> {
      const of = () => seen.filter((x) => kind in obj(x) && [obj(x)[kind]].flat()[0] === id);
      await until(() => of().length >= n, `${kind} #${n} of ${id} (got ${JSON.stringify(seen)})`, ms);
      return of()[n - 1];
    },
    count: (kind: string) => seen.filter((x) => kind in obj(x)).length,
  };
}

/** Resolves once inspect reports `state` for `id`; names what it saw last when it times out. */
async function stateOf(h: Harness, id: string, state: string, ms = 30_000): Promise<void> {
  let last: string | undefined;
  await until(async () => (last = (await h.client.inspect(id)).state) === state, () => `${id} ${state} (last ${last})`, ms);
}

/** Pids whose argv is exactly `argv`. */
function processesWith(argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8') === want) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

describe('supervision', privileged({ cgroups: true }), () => {
  test('a crashing container is restarted with backoff and given up after max_restarts', { timeout: 60_000 }, async (t) => {
    const restart = { policy: 'on-failure', max_restarts: 2, within: '1m', backoff: { initial: '50ms', max: '80ms', factor: 2 } };
    const npk = await probe('crashloop', { manifest: { args: ['exit', '3'], restart } });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const feed = await supervisionFeed(t, h);
    const id = 'crashloop:0.0.1';
    await h.client.start(id);
    const first = (await feed.nth('restarting', id, 1)) as { restarting: [string, Obj] };
    assert.deepEqual(first.restarting[1], { attempt: 1, delay_ms: 50, reason: 'Exit(3)' });
    const second = (await feed.nth('restarting', id, 2)) as { restarting: [string, Obj] };
    assert.deepEqual(second.restarting[1], { attempt: 2, delay_ms: 80, reason: 'Exit(3)' }, 'doubled, capped at max');
    const gaveUp = (await feed.nth('gave_up', id)) as { gave_up: [string, Obj] };
    assert.deepEqual(gaveUp.gave_up[1], { restarts: 2, reason: 'Exit(3)' });
    // Three runs: the start and two restarts, each with its exit (Northstar's notifications stay as they were).
    assert.equal(feed.seen.filter((n) => obj(n).started === id).length, 3);
    assert.equal(feed.seen.filter((n) => 'exit' in obj(n)).length, 3);
    const d = await h.client.inspect(id);
    assert.equal(d.state, 'mounted');
    assert.deepEqual(d.restarts, { count: 2, last_reason: 'Exit(3)', next_attempt_ms: null, gave_up: true });
    // The subscriber that did not opt in saw only Northstar's variants.
    assert.ok(h.notifications.every((n) => !('restarting' in obj(n)) && !('gave_up' in obj(n))));
    // Down for good: a start request begins again from zero.
    await h.client.start(id);
    const fresh = (await feed.nth('restarting', id, 3)) as { restarting: [string, Obj] };
    assert.equal(fresh.restarting[1].attempt, 1);
    await h.client.stop(id, 1000).catch(() => undefined);
  });

  test('a failing health check makes the container unhealthy, and the policy restarts it', { timeout: 60_000 }, async (t) => {
    const health = { exec: ['/probe', 'exit', '1'], interval: '100ms', timeout: '2s', retries: 2, start_period: '0s' };
    const restart = { policy: 'on-failure', max_restarts: 3, within: '1m', backoff: { initial: '10ms' }, stop_grace: '1s' };
    const sick = await probe('sick', { manifest: { health, restart } });
    const fine = await probe('fine', { manifest: { health: { ...health, exec: ['/probe', 'exit', '0'] } } });
    const h = await startRuntime(t, { repositories: { default: { npks: [sick, fine], key: true } } });
    const feed = await supervisionFeed(t, h);
    await h.client.start('fine:0.0.1');
    await feed.nth('healthy', 'fine:0.0.1');
    assert.deepEqual((await h.client.inspect('fine:0.0.1')).health, { status: 'healthy', failures: 0 });

    const id = 'sick:0.0.1';
    await h.client.start(id);
    const pid = (await h.client.inspect(id)).process!.pid;
    await feed.nth('unhealthy', id);
    const r = (await feed.nth('restarting', id)) as { restarting: [string, Obj] };
    assert.equal(r.restarting[1].reason, 'unhealthy');
    // The unhealthy run was stopped (SIGTERM ends the sleeping probe), then started anew.
    const exit = feed.seen.find((n) => Array.isArray(obj(n).exit) && (obj(n).exit as unknown[])[0] === id) as { exit: [string, unknown] };
    assert.deepEqual(exit.exit[1], { signalled: { signal: 15 } });
    await feed.nth('started', id, 2);
    const again = await h.client.inspect(id);
    if (again.process) assert.notEqual(again.process.pid, pid, 'a new process');
    assert.ok((again.restarts?.count ?? 0) >= 1);
    await h.client.stop(id, 1000).catch(() => undefined);
    await h.client.stop('fine:0.0.1', 1000);
  });

  test('a stop during the backoff cancels the restart', { timeout: 60_000 }, async (t) => {
    const restart = { policy: 'always', backoff: { initial: '1h', max: '1h' } };
    const npk = await probe('patient', { manifest: { args: ['exit', '4'], restart } });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const feed = await supervisionFeed(t, h);
    const id = 'patient:0.0.1';
    await h.client.start(id);
    await feed.nth('restarting', id);
    const waiting = await h.client.inspect(id);
    assert.equal(waiting.state, 'restarting');
    assert.ok((waiting.restarts?.next_attempt_ms ?? 0) > 3_000_000, 'the next attempt is an hour away');
    // The stop answers with the exit that led to the wait.
    const stopped = await h.client.stop(id, 1000);
    assert.equal(stopped, id);
    const d = await h.client.inspect(id);
    assert.equal(d.state, 'mounted');
    assert.equal(d.restarts?.next_attempt_ms, null);
    // Its resources are free again: it can be unmounted, then started by request.
    assert.deepEqual(await h.client.umount([id]), [{ ok: { container: id } }]);
    assert.equal(feed.seen.filter((n) => obj(n).started === id).length, 1, 'no restart after the stop');
  });

  test('a daemon killed during a backoff restarts with counters at zero and nothing running twice', { timeout: 90_000 }, async (t) => {
    // A run that lasts (a day, in ms: an argv no other test uses), crashed
    // from outside, restarted after a long backoff. Progress is read with
    // inspect, not notifications: an autostart may finish before a client
    // has subscribed.
    const argv = ['/probe', 'sleep', '86400017'];
    const restart = { policy: 'always', backoff: { initial: '1h', max: '1h' } };
    const npk = await probe('phoenix', { manifest: { args: argv.slice(1), autostart: 'relaxed', restart } });
    const id = 'phoenix:0.0.1';
    const repositories = { default: { npks: [npk], key: true } };
    const cgroup = `nstar-test-supervision-${process.pid}`;
    const first = await startDaemon(t, { repositories, cgroup });
    await stateOf(first, id, 'started.running');
    const [pid, ...more] = processesWith(argv);
    assert.ok(pid !== undefined && more.length === 0, `one ${argv.join(' ')} in the first daemon`);
    process.kill(pid, 'SIGKILL');
    await stateOf(first, id, 'restarting');
    assert.equal((await first.client.inspect(id)).restarts?.count, 1);
    first.proc.kill('SIGKILL');
    await first.exited;

    const second = await startDaemon(t, { repositories, cgroup, reuse: { dir: first.dir } });
    t.after(async () => {
      if (second.proc.exitCode === null) {
        await second.client.shutdown().catch(() => undefined);
        await second.exited;
      }
    });
    await stateOf(second, id, 'started.running');
    const d = await second.client.inspect(id);
    assert.deepEqual(d.restarts, { count: 0, last_reason: null, next_attempt_ms: null, gave_up: false }, 'counters start from zero');
    assert.equal(processesWith(argv).length, 1, `exactly one ${argv.join(' ')}`);
  });
});
