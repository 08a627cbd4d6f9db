// The live state-chart inspector: a local web page (node:http, no files from
// the internet) showing every machine actor, its chart with the active state
// highlighted, and its event stream over server-sent events. Opt-in: the
// daemon starts it only with `[inspector] bind = "127.0.0.1:4201"`.
//
//   const inspector = await startInspector({ bind: '127.0.0.1:4201' });
//   createActor(supervisor, { inspect: inspector.inspect });
//   ...
//   await inspector.close();
//
// Main thread. A slow or stuck browser never slows the runtime: each page has
// a bounded queue; when its socket does not drain, further changes are dropped
// and the page is told how many, then it reloads the current state.
// Charts are laid out by elkjs: in the page, from its bundled build served
// here, or in a worker thread for the .svg URLs (chart.ts); never here.
// Recordings (/api/export.jsonl, .msgpack) carry the machines' graphs and the
// history with payloads and contexts, redacted (redact.ts); the page opens
// them offline.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InspectionEvent } from 'xstate';
import { Logger } from '../log.js';
import { Packr } from 'msgpackr';
import { chartMermaid, chartSvg, elkBundlePath, layoutChart, type ElkNode } from './chart.js';
import { activePaths, machineGraph, type ChartGraph } from './graph.js';
import { Recorder, type Change, type RecorderOptions } from './recorder.js';

export interface InspectorOptions extends RecorderOptions {
  /** "host:port" ("127.0.0.1:4201"; port 0 picks a free one). */
  bind: string;
  /** Unsent bytes per page before it counts as stuck and changes are dropped (default 1 MiB). */
  maxBufferedBytes?: number;
}

export interface Inspector {
  /** The page, e.g. http://127.0.0.1:4201/. */
  readonly url: string;
  /** Pass as XState's `inspect` option: createActor(machine, { inspect }). */
  readonly inspect: (event: InspectionEvent) => void;
  readonly recorder: Recorder;
  close(): Promise<void>;
}

const log = new Logger('inspector');
const pageDir = join(dirname(fileURLToPath(import.meta.url)), 'page');
const require = createRequire(import.meta.url);
const JS = 'text/javascript; charset=utf-8';
/** The page's files, and the two browser builds it uses (resolved from their packages: the daemon bundle has no node_modules beside it). */
const STATIC: Record<string, [path: () => string, type: string]> = {
  '/': [() => join(pageDir, 'index.html'), 'text/html; charset=utf-8'],
  '/app.js': [() => join(pageDir, 'app.js'), JS],
  '/chart.js': [() => join(pageDir, 'chart.js'), JS],
  '/events.js': [() => join(pageDir, 'events.js'), JS],
  '/app.css': [() => join(pageDir, 'app.css'), 'text/css; charset=utf-8'],
  '/elk.js': [elkBundlePath, JS],
  // The package exports no subpath for it: it sits beside its Node build.
  '/msgpackr.js': [() => join(dirname(require.resolve('msgpackr')), 'index.min.js'), JS],
};

/** Splits "host:port" and "[::1]:port". */
export function parseBind(bind: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(bind.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`inspector: bind "${bind}" is not host:port`);
  return { host: m[1] ?? m[2], port };
}

export async function startInspector(opts: InspectorOptions): Promise<Inspector> {
  const { host, port } = parseBind(opts.bind);
  const recorder = new Recorder(opts);
  const pages = new Set<Page>();
  const graphs = new Map<string, ChartGraph>();
  const graphOf = (key: string): ChartGraph | undefined => {
    let g = graphs.get(key);
    const m = recorder.machine(key);
    if (!g && m) graphs.set(key, (g = { ...machineGraph(m), id: key }));
    return g;
  };
  const layouts = new Map<string, Promise<ElkNode>>();
  const layoutOf = (key: string, g: ChartGraph): Promise<ElkNode> => {
    let l = layouts.get(key);
    if (!l) layouts.set(key, (l = layoutChart(g)));
    l.catch(() => layouts.delete(key));
    return l;
  };
  const unsubscribe = recorder.subscribe((c) => {
    for (const p of pages) p.push(c);
  });
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    try {
      route(req, res, { recorder, graphOf, layoutOf, pages, maxBufferedBytes: opts.maxBufferedBytes ?? 1 << 20, host });
    } catch (e) {
      log.warn(`${req.method} ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error');
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/`;
  log.info(`state-chart inspector on ${url}`);
  return {
    url,
    inspect: recorder.inspect,
    recorder,
    close: () => closeServer(server, sockets, pages, unsubscribe),
  };
}

async function closeServer(server: Server, sockets: Set<Socket>, pages: Set<Page>, unsubscribe: () => void): Promise<void> {
  unsubscribe();
  for (const p of pages) p.end();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of sockets) s.destroy();
  await closed;
}

interface Ctx {
  recorder: Recorder;
  graphOf(key: string): ChartGraph | undefined;
  layoutOf(key: string, g: ChartGraph): Promise<ElkNode>;
  pages: Set<Page>;
  maxBufferedBytes: number;
  host: string;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}
const json = (res: ServerResponse, v: unknown) => send(res, 200, 'application/json', JSON.stringify(v));

/** Only local names: a page from another site cannot reach us through DNS rebinding. */
function hostAllowed(req: IncomingMessage, bindHost: string): boolean {
  const h = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return ['127.0.0.1', 'localhost', '::1', bindHost].includes(h);
}

function route(req: IncomingMessage, res: ServerResponse, ctx: Ctx): void {
  if (req.method !== 'GET') return send(res, 405, 'text/plain', 'only GET');
  if (!hostAllowed(req, ctx.host)) return send(res, 403, 'text/plain', 'unexpected Host header');
  const url = new URL(req.url ?? '/', 'http://x');
  const path = decodeURIComponent(url.pathname);
  const file = STATIC[path];
  if (file) return send(res, 200, file[1], readFileSync(file[0](), 'utf8'));
  if (path === '/api/actors') return json(res, { actors: ctx.recorder.actorList(), machines: ctx.recorder.machineKeyList() });
  let m = /^\/api\/actors\/([^/]+)\/events$/.exec(path);
  if (m) return json(res, ctx.recorder.events(m[1]));
  m = /^\/api\/history\/(.+)\/(\d+)$/.exec(path);
  if (m) {
    const d = ctx.recorder.detail(m[1], Number(m[2]));
    return d ? json(res, d) : send(res, 404, 'text/plain', `no event ${m[2]} in the history of ${m[1]}`);
  }
  m = /^\/api\/actors\/([^/]+)\/chart\.svg$/.exec(path);
  if (m) {
    const a = ctx.recorder.actor(m[1]);
    const g = a && ctx.graphOf(a.machine);
    if (!a || !g) return send(res, 404, 'text/plain', `no actor ${m[1]}`);
    return svg(res, ctx, a.machine, g, activePaths(a.state));
  }
  m = /^\/api\/machines\/([^/]+?)(\.json|\.svg|\.mmd)$/.exec(path);
  if (m) {
    const g = ctx.graphOf(m[1]);
    if (!g) return send(res, 404, 'text/plain', `no machine ${m[1]}`);
    if (m[2] === '.json') return json(res, g);
    if (m[2] === '.svg') return svg(res, ctx, m[1], g, []);
    return send(res, 200, 'text/plain; charset=utf-8', chartMermaid(g));
  }
  if (path === '/api/export.jsonl' || path === '/api/export.msgpack') return void exportSession(res, ctx, path.endsWith('.msgpack') ? 'msgpack' : 'jsonl');
  if (path === '/api/stream') return void ctx.pages.add(new Page(res, ctx));
  send(res, 404, 'text/plain', 'not found');
}

function svg(res: ServerResponse, ctx: Ctx, key: string, g: ChartGraph, active: string[]): void {
  ctx.layoutOf(key, g).then(
    (laid) => send(res, 200, 'image/svg+xml', chartSvg(g, laid, active)),
    (e: Error) => {
      log.warn(e.message);
      send(res, 500, 'text/plain', e.message);
    },
  );
}

/**
 * A recording: the machines' graphs, the actors, then every recorded event
 * with its payload and context (redacted), oldest first. Written a history at
 * a time, waiting for the socket to drain, so a big session neither blocks
 * the daemon nor piles up in memory.
 */
async function exportSession(res: ServerResponse, ctx: Ctx, format: 'jsonl' | 'msgpack'): Promise<void> {
  const packr = new Packr({ useRecords: false });
  const encode = (v: unknown) => (format === 'jsonl' ? JSON.stringify(v) + '\n' : packr.pack(v));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  res.writeHead(200, {
    'content-type': format === 'jsonl' ? 'application/x-ndjson' : 'application/x-msgpack',
    'content-disposition': `attachment; filename="nstar-inspector-${stamp}.${format}"`,
    'cache-control': 'no-store',
  });
  let closed = false;
  res.on('close', () => (closed = true));
  const write = async (chunk: string | Buffer) => {
    if (!res.write(chunk) && !closed) await new Promise((r) => res.once('drain', r).once('close', r));
  };
  const machines = Object.fromEntries(ctx.recorder.machineKeyList().map((k) => [k, ctx.graphOf(k)]));
  await write(encode({ kind: 'recording', version: 1, created: Date.now(), machines }));
  for (const actor of ctx.recorder.actorList()) await write(encode({ kind: 'actor', actor }));
  for (const name of ctx.recorder.historyNames()) {
    for (const line of ctx.recorder.recording(name)) {
      if (closed) return;
      await write(encode({ kind: 'event', ...line }));
    }
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

/**
 * One page's server-sent event stream, bounded. Changes are batched into one
 * write per tick; while the socket holds more than `maxBufferedBytes` unsent,
 * changes are dropped and counted, and the page is told once it drains.
 */
class Page {
  private dropped = 0;
  private batch: string[] = [];
  private scheduled = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly ctx: Ctx,
  ) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(': inspector\n\n');
    res.on('drain', () => this.drained());
    res.on('close', () => ctx.pages.delete(this));
  }

  push(c: Change): void {
    if (this.dropped > 0 || this.res.writableLength > this.ctx.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    this.batch.push(`event: ${c.kind}\ndata: ${JSON.stringify(c.kind === 'actor' ? c.actor : c.event)}\n\n`);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const text = this.batch.join('');
      this.batch = [];
      if (!this.res.destroyed) this.res.write(text);
    });
  }

  private drained(): void {
    if (this.dropped === 0) return;
    this.res.write(`event: dropped\ndata: ${JSON.stringify({ count: this.dropped })}\n\n`);
    log.debug(`a slow page missed ${this.dropped} changes`);
    this.dropped = 0;
  }

  end(): void {
    this.res.end();
  }
}
