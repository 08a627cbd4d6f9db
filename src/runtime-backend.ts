// The console's view of the runtime: every wire request (src/console/protocol.ts)
// becomes a supervisor request (src/machines/requests.ts), its answer or
// RuntimeError the wire response. Notifications and inspect's data go to the
// console in the runtime's words: it translates them for each client.
// Main thread.
import type {
  ConsoleBackend,
  ContainerResult as WireResult,
  InstallResult,
  Request as WireRequest,
  RequestName,
  Response,
} from './console/index.js';
import { requestName } from './console/index.js';
import { onNotification, request, type Supervisor } from './machines/supervisor.js';
import type { ContainerResult } from './machines/requests.js';
import { RuntimeError } from './model/errors.js';
import type { Output } from './actors/output/index.js';
import { logsRequest } from './runtime-logs.js';
import { attachRequest, copyInRequest, networkOf } from './runtime-streams.js';

const wireError = (e: unknown) => RuntimeError.from(e).toWire();

function results(rs: ContainerResult[]): WireResult[] {
  return rs.map((r) => (r.ok ? { ok: { container: r.container } } : { error: { container: r.container, error: r.error.toWire() } }));
}

/** Runs a per-container request; success and failure both become a ContainerResult. */
async function single(container: string, run: () => Promise<unknown>): Promise<WireResult> {
  try {
    await run();
    return { ok: { container } };
  } catch (e) {
    return { error: { container, error: wireError(e) } };
  }
}

/** The body of the wire request named K (undefined for a unit request such as `list`). */
type Body<K extends RequestName> = [Extract<WireRequest, K>] extends [never] ? Extract<WireRequest, Record<K, unknown>>[K] : undefined;
type Handler<K extends RequestName> = (body: Body<K>, req: WireRequest) => Promise<Response>;

/** Requests the console answers itself or hands to install, inspect, attach or copyIn: they never reach `request`. */
const unsupported = async (_: unknown, req: WireRequest): Promise<Response> => {
  throw new Error(`unsupported request ${JSON.stringify(req)}`);
};

/** One handler per wire request: a request added to the protocol without one does not compile. */
function handlers(sup: Supervisor, onShutdown: () => void, output: Output | undefined) {
  return {
    list: async () => ({ list: await request(sup, { type: 'list' }) }),
    repositories: async () => ({ repositories: await request(sup, { type: 'repositories' }) }),
    shutdown: async () => {
      onShutdown();
      return 'shutdown' as const;
    },
    ident: async () => {
      throw new Error('ident is answered by the console');
    },
    mount: async ({ containers }) => ({ mount: results(await request(sup, { type: 'mount', containers })) }),
    umount: async ({ containers }) => ({ umount: results(await request(sup, { type: 'umount', containers })) }),
    start: async ({ container, init, arguments: args, environment }) => ({
      start: await single(container, () =>
        request(sup, { type: 'start', container, init, arguments: args ?? [], environment: environment ?? {} }),
      ),
    }),
    kill: async ({ container, signal }) => ({ kill: await single(container, () => request(sup, { type: 'kill', container, signal })) }),
    stop: async ({ container, grace_ms }) => ({
      stop: await single(container, () => request(sup, { type: 'stop', container, graceMs: grace_ms })),
    }),
    pause: async ({ container }) => ({ pause: await single(container, () => request(sup, { type: 'pause', container })) }),
    resume: async ({ container }) => ({ resume: await single(container, () => request(sup, { type: 'resume', container })) }),
    uninstall: async ({ container, wipe }) => {
      const r = await single(container, () => request(sup, { type: 'uninstall', container, wipe }));
      // Its ring of output must not outlive it.
      if ('ok' in r) output?.forget(container);
      return { uninstall: r };
    },
    exec: async ({ container, path, arguments: args, environment, wait }) => {
      try {
        const x = await request(sup, { type: 'exec', container, path, args: args ?? [], env: environment ?? {} });
        const status = wait ? await x.exited : null;
        return { exec: { ok: { container, pid: x.pid, status } } };
      } catch (e) {
        return { exec: { error: { container, error: wireError(e) } } };
      }
    },
    install: unsupported,
    inspect: unsupported,
    token_create: unsupported,
    token_verify: unsupported,
    copy_in: unsupported,
    copy_out: unsupported,
    logs: unsupported,
  } satisfies { [K in RequestName]: Handler<K> };
}

export function consoleBackend(sup: Supervisor, onShutdown: () => void, output?: Output): ConsoleBackend {
  const table: { [K in RequestName]: Handler<K> } = handlers(sup, onShutdown, output);
  const handle = async (req: WireRequest): Promise<Response> => {
    const name = requestName(req);
    const body = typeof req === 'string' ? undefined : (req as Record<string, unknown>)[name];
    return (table[name] as Handler<RequestName>)(body as never, req);
  };

  return {
    request: (req) => handle(req),
    async install(repository, size, data): Promise<InstallResult> {
      try {
        const container = await request(sup, { type: 'install', repository, data, size });
        return { ok: { container } };
      } catch (e) {
        return { error: { error: wireError(e) } };
      }
    },
    async inspect(container, statistics) {
      const d = await request(sup, { type: 'inspect', container, categories: statistics });
      // The interfaces only for our extension: they cost a trip into the network namespace.
      return statistics !== undefined ? { ...d, network: await networkOf(d.process?.pid) } : d;
    },
    subscribe(cb) {
      const sub = onNotification(sup, cb);
      return () => sub.unsubscribe();
    },
    attach: (req) => {
      if (typeof req === 'object' && 'logs' in req) {
        if (!output) throw new Error('this runtime keeps no container output');
        return logsRequest(sup, output, req.logs);
      }
      return attachRequest(sup, req);
    },
    copyIn: (r, data) => copyInRequest(sup, r, data),
  };
}
