// The console's view of the runtime: every wire request (src/console/protocol.ts)
// becomes a supervisor request (src/machines/requests.ts), its answer or
// RuntimeError the wire response. The only place the two vocabularies meet.
// Main thread.
import type {
  ConsoleBackend,
  ContainerData as WireContainerData,
  ContainerResult as WireResult,
  InstallResult,
  Request as WireRequest,
  RequestName,
  Response,
} from './console/index.js';
import { requestName } from './console/index.js';
import { onNotification, request, type Supervisor } from './machines/supervisor.js';
import type { ContainerData, ContainerResult } from './machines/requests.js';
import { RuntimeError } from './model/errors.js';
import { manifestToJson, type Manifest } from './model/manifest.js';
import type { Output } from './actors/output/index.js';
import { logsRequest } from './runtime-logs.js';
import { attachRequest, copyInRequest, networkOf } from './runtime-streams.js';

const wireError = (e: unknown) => RuntimeError.from(e).toWire();

/**
 * A Northstar client (an inspect without our `statistics` field) parses the
 * manifest with deny_unknown_fields: it gets it without our keys.
 */
function northstarManifest(m: Manifest): Manifest {
  const { restart: _restart, health: _health, ...rest } = m;
  return rest;
}

/** The restart policy's and health check's part of inspect, for containers whose manifest has them. */
function supervision(d: ContainerData): Pick<WireContainerData, 'restarts' | 'health'> {
  const out: Pick<WireContainerData, 'restarts' | 'health'> = {};
  if (d.restarts) {
    const r = d.restarts;
    out.restarts = { count: r.count, last_reason: r.lastReason, next_attempt_ms: r.nextAttemptMs, gave_up: r.gaveUp };
  }
  if (d.health !== undefined) out.health = d.health;
  return out;
}

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

/** Requests the console answers itself or hands to install, attach or copyIn: they never reach `request`. */
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
    inspect: async ({ container, statistics }) => {
      try {
        const d = await request(sup, { type: 'inspect', container, categories: statistics });
        return {
          inspect: {
            ok: {
              container,
              data: {
                manifest: manifestToJson(statistics === undefined ? northstarManifest(d.manifest) : d.manifest),
                repository: d.repository,
                mounted: d.mounted,
                process: d.process,
                startup: d.startup ?? null,
                state: d.state,
                ...supervision(d),
                ...(statistics !== undefined ? { network: await networkOf(d.process?.pid) } : {}),
              },
            },
          },
        };
      } catch (e) {
        return { inspect: { error: { container, error: wireError(e) } } };
      }
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
