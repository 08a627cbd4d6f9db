// `stress`: load on a running runtime through its console (spec/tools.md §9.3,
// northstar-stress). Cycle modes run one task and one connection per
// startable container; `install-uninstall` follows notifications; `monkey`
// does random things and ignores the errors. Prints `iterations: N`.
import { Command, CommanderError, Option } from 'commander';

import { Client, ClientError, DEFAULT_URLS } from '../client/index.js';
import { parseTimeout, type CliIo } from './nstar.js';

export const MODES = [
  'start-stop',
  'mount-umount',
  'start-stop-umount',
  'mount-start-stop-umount',
  'install-uninstall',
  'monkey',
] as const;
export type Mode = (typeof MODES)[number];

interface Options {
  url?: string;
  duration?: string;
  randomDelay?: string;
  mode: Mode;
  npk?: string;
  repository?: string;
  initialRandomDelay: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const random = (maxMs: number) => Math.floor(Math.random() * (maxMs + 1));
/** Poll interval while waiting for a state change seen through inspect. */
const POLL_MS = 10;
/** How long one state change may take before the cycle goes on regardless. */
const STATE_TIMEOUT_MS = 30_000;

async function connect(o: Options, subscribe = false): Promise<Client> {
  const opts = { subscribe };
  return o.url ? Client.connect(o.url, opts) : Client.connectFirst(DEFAULT_URLS, opts);
}

async function until(client: Client, c: string, pred: (d: Awaited<ReturnType<Client['inspect']>>) => boolean, deadline: number): Promise<void> {
  while (!pred(await client.inspect(c, []))) {
    if (Date.now() > deadline) return;
    await sleep(POLL_MS);
  }
}

async function startable(o: Options): Promise<string[]> {
  const c = await connect(o);
  try {
    const out: string[] = [];
    for (const x of await c.list()) {
      const d = await c.inspect(x);
      if ((d.manifest as { init?: unknown }).init !== undefined) out.push(x);
    }
    return out.sort();
  } finally {
    c.close();
  }
}

/** Iterations done so far, shared by all tasks: printed also when a task fails. */
interface Count {
  n: number;
}

/** A container that exited by itself before the kill: the cycle goes on. */
function notStarted(e: unknown): boolean {
  return e instanceof ClientError && e.wire !== undefined && 'stop_container_not_started' in e.wire;
}

/** One container's cycle, repeated until the deadline. */
async function cycle(o: Options, container: string, barrier: Promise<void>, end: number, count: Count): Promise<void> {
  const client = await connect(o);
  const mount = o.mode === 'mount-umount' || o.mode === 'mount-start-stop-umount';
  const start = o.mode !== 'mount-umount';
  const umount = o.mode !== 'start-stop';
  const delay = o.randomDelay ? parseTimeout(o.randomDelay) : 0;
  try {
    await barrier;
    await sleep(random(parseTimeout(o.initialRandomDelay)));
    // A cycle started before the end is finished, so nothing stays started or mounted.
    while (Date.now() < end) {
      const give = Date.now() + STATE_TIMEOUT_MS;
      if (mount) await client.mount([container]);
      if (start) {
        // The start is answered once the container runs; it may exit by itself at any time after.
        await client.start(container);
        if (delay) await sleep(random(delay));
        await client.kill(container, 15).catch((e: unknown) => {
          if (!notStarted(e)) throw e;
        });
        await until(client, container, (d) => d.process === null, give);
      }
      if (umount) {
        await client.umount([container]);
        await until(client, container, (d) => !d.mounted, give);
      }
      count.n++;
    }
  } finally {
    client.close();
  }
}

async function installUninstall(o: Options, end: number, count: Count): Promise<void> {
  if (!o.npk || !o.repository) throw new Error('install-uninstall needs --npk and --repository');
  const client = await connect(o, true);
  const { npk, repository } = o;
  try {
    await client.installFile(npk, repository);
    const timer = setTimeout(() => client.close(), Math.max(0, end - Date.now()));
    for await (const note of client.notifications()) {
      if (typeof note !== 'object') continue;
      if ('install' in note) void client.uninstall(note.install, true).catch(() => undefined);
      else if ('uninstall' in note) {
        count.n++;
        if (Date.now() >= end) break;
        void client.installFile(npk, repository).catch(() => undefined);
      }
    }
    clearTimeout(timer);
  } finally {
    client.close();
  }
}

async function monkey(o: Options, end: number, count: Count): Promise<void> {
  const client = await connect(o);
  const containers = await client.list();
  const delay = o.randomDelay ? parseTimeout(o.randomDelay) : 0;
  try {
    while (Date.now() < end && containers.length > 0) {
      const c = containers[Math.floor(Math.random() * containers.length)]!;
      const actions = [
        () => client.start(c),
        () => client.kill(c, 1 + Math.floor(Math.random() * 15)),
        () => client.mount([c]),
        () => client.umount([c]),
      ];
      await actions[Math.floor(Math.random() * actions.length)]!().catch(() => undefined);
      count.n++;
      if (delay) await sleep(random(delay));
    }
  } finally {
    client.close();
  }
}

/** Runs the mode; the iterations are printed whether it ends at the deadline or on an error. */
async function run(o: Options, io: CliIo): Promise<void> {
  const durationMs = o.duration ? parseTimeout(o.duration) : Infinity;
  const end = Date.now() + durationMs;
  const count: Count = { n: 0 };
  try {
    if (o.mode === 'install-uninstall') await installUninstall(o, end, count);
    else if (o.mode === 'monkey') await monkey(o, end, count);
    else {
      const containers = await startable(o);
      if (containers.length === 0) throw new Error('no startable containers installed');
      let open!: () => void;
      const barrier = new Promise<void>((r) => (open = r));
      const tasks = containers.map((c) => cycle(o, c, barrier, end, count));
      open();
      await Promise.all(tasks);
    }
  } finally {
    io.out(`iterations: ${count.n}\n`);
  }
}

export async function main(
  argv: string[],
  io: CliIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), isTTY: false },
): Promise<number> {
  let code = 0;
  const program = new Command('stress')
    .description('put load on a runtime through its console')
    .option('-u, --url <url>', `console url (default: ${DEFAULT_URLS.join(', then ')})`)
    .option('-d, --duration <duration>', 'how long to run (default: until interrupted)')
    .option('-r, --random-delay <duration>', 'random sleep between start and kill, or between monkey actions')
    .addOption(new Option('-m, --mode <mode>', 'what to do').choices(MODES).default('start-stop'))
    .option('--npk <path>', 'npk for install-uninstall')
    .option('--repository <id>', 'repository for install-uninstall')
    .option('-i, --initial-random-delay <duration>', 'random delay before each task starts', '1s')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .action(async (o: Options) => {
      try {
        await run(o, io);
      } catch (e) {
        code = 1;
        io.err(`stress: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : e.exitCode || 2;
    throw e;
  }
  return code;
}
