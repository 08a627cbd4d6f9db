// A ConsoleBackend over the supervisor's request API (src/machines/requests.ts):
// maps each wire request to a supervisor request and each answer or
// RuntimeError back to the wire variant. The runtime wires it up:
//
//   const backend = supervisorBackend({
//     ask: (r) => request(sup, r),
//     subscribe: (cb) => { const s = sup.on('notification', (e) => cb(e.notification)); return () => s.unsubscribe(); },
//   });
import { RuntimeError, type ExitStatus } from '../model/errors.js';
import { manifestToJson } from '../model/manifest.js';
import type {
  ContainerResult as SupervisorResult,
  Notification as SupervisorNotification,
  Request as SupervisorRequest,
  ResponseOf,
} from '../machines/requests.js';
import { err, ok, type ContainerResult, type InstallResult, type Notification, type Request, type Response } from './protocol.js';
import type { ConsoleBackend } from './server.js';

export interface SupervisorAccess {
  ask<R extends SupervisorRequest>(r: R): Promise<ResponseOf<R>>;
  subscribe(cb: (n: SupervisorNotification) => void): () => void;
}

const wire = (e: unknown) => RuntimeError.from(e).toWire();

function results(rs: SupervisorResult[]): ContainerResult[] {
  return rs.map((r) => (r.ok ? ok(r.container) : err(r.container, r.error.toWire())));
}

/** `{[name]: ok}` when the supervisor answers, `{[name]: error}` when it rejects. */
async function single(name: string, container: string, p: Promise<unknown>): Promise<Response> {
  try {
    await p;
    return { [name]: ok(container) } as Response;
  } catch (e) {
    return { [name]: err(container, wire(e)) } as Response;
  }
}

export function supervisorBackend(s: SupervisorAccess): ConsoleBackend {
  return {
    subscribe: (cb) => s.subscribe((n) => cb(n as Notification)),

    async install(repository, size, data): Promise<InstallResult> {
      try {
        return { ok: { container: await s.ask({ type: 'install', repository, data, size }) } };
      } catch (e) {
        return { error: { error: wire(e) } };
      }
    },

    async request(req: Request): Promise<Response> {
      if (req === 'list') return { list: await s.ask({ type: 'list' }) };
      if (req === 'repositories') return { repositories: await s.ask({ type: 'repositories' }) };
      if (req === 'shutdown') {
        await s.ask({ type: 'shutdown' });
        return 'shutdown';
      }
      if (typeof req === 'string') throw new Error(`the console answers ${req} itself`);
      if ('mount' in req) return { mount: results(await s.ask({ type: 'mount', containers: req.mount.containers })) };
      if ('umount' in req) return { umount: results(await s.ask({ type: 'umount', containers: req.umount.containers })) };
      if ('start' in req) {
        const r = req.start;
        return single('start', r.container, s.ask({ type: 'start', container: r.container, init: r.init ?? null, arguments: r.arguments, environment: r.environment }));
      }
      if ('kill' in req) return single('kill', req.kill.container, s.ask({ type: 'kill', container: req.kill.container, signal: req.kill.signal }));
      if ('stop' in req) return single('stop', req.stop.container, s.ask({ type: 'stop', container: req.stop.container, graceMs: req.stop.grace_ms }));
      if ('pause' in req) return single('pause', req.pause.container, s.ask({ type: 'pause', container: req.pause.container }));
      if ('resume' in req) return single('resume', req.resume.container, s.ask({ type: 'resume', container: req.resume.container }));
      if ('uninstall' in req) {
        const r = req.uninstall;
        return single('uninstall', r.container, s.ask({ type: 'uninstall', container: r.container, wipe: r.wipe }));
      }
      if ('inspect' in req) {
        const c = req.inspect.container;
        try {
          const d = await s.ask({ type: 'inspect', container: c, categories: req.inspect.statistics });
          const data = {
            manifest: manifestToJson(d.manifest),
            repository: d.repository,
            mounted: d.mounted,
            process: d.process ? { pid: d.process.pid, uptime: d.process.uptime, statistics: d.process.statistics ?? {} } : null,
            startup: d.startup ?? null,
            state: d.state,
          };
          return { inspect: { ok: { container: c, data } } };
        } catch (e) {
          return { inspect: { error: { container: c, error: wire(e) } } };
        }
      }
      if ('exec' in req) {
        const r = req.exec;
        try {
          const x = await s.ask({ type: 'exec', container: r.container, path: r.path, args: r.arguments, env: r.environment });
          const status: ExitStatus | null = r.wait ? await x.exited : null;
          return { exec: { ok: { container: r.container, pid: x.pid, status } } };
        } catch (e) {
          return { exec: { error: { container: r.container, error: wire(e) } } };
        }
      }
      throw new Error(`the console answers ${Object.keys(req)[0]} itself`);
    },
  };
}
