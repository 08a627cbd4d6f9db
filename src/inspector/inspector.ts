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
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InspectionEvent } from 'xstate';
import { Logger } from '../log.js';
import { chartMermaid, chartSvg } from './chart.js';
import { machineGraph, type ChartGraph } from './graph.js';
import { Recorder, type Change, type RecorderOptions } from './recorder.js';

export interface InspectorOptions extends RecorderOptions {
  /** "host:port" ("127.0.0.1:4201"; port 0 picks a free one). */
  bind: string;
  /** Changes queued per page before it counts as stuck (default 1000). */
  maxQueued?: number;
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
const STATIC: Record<string, [file: string, type: string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
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
  const unsubscribe = recorder.subscribe((c) => {
    for (const p of pages) p.push(c);
  });
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    try {
      route(req, res, { recorder, graphOf, pages, maxQueued: opts.maxQueued ?? 1000, host });
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
  pages: Set<Page>;
  maxQueued: number;
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
  if (file) return send(res, 200, file[1], readFileSync(join(pageDir, file[0]), 'utf8'));
  if (path === '/api/actors') return json(res, { actors: ctx.recorder.actorList(), machines: ctx.recorder.machineKeyList() });
  let m = /^\/api\/actors\/([^/]+)\/events$/.exec(path);
  if (m) return json(res, ctx.recorder.events(m[1]));
  m = /^\/api\/machines\/([^/]+?)(\.json|\.svg|\.mmd)$/.exec(path);
  if (m) {
    const g = ctx.graphOf(m[1]);
    if (!g) return send(res, 404, 'text/plain', `no machine ${m[1]}`);
    if (m[2] === '.json') return json(res, g);
    if (m[2] === '.svg') return send(res, 200, 'image/svg+xml', chartSvg(g, [], url.searchParams.get('dir') === 'TB' ? 'TB' : 'LR'));
    return send(res, 200, 'text/plain; charset=utf-8', chartMermaid(g));
  }
  if (path === '/api/stream') return void ctx.pages.add(new Page(res, ctx));
  send(res, 404, 'text/plain', 'not found');
}

/** One page's server-sent event stream, bounded. */
class Page {
  private dropped = 0;
  private congested = false;
  private queued = 0;

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
    if (this.congested) {
      this.dropped++;
      return;
    }
    const ok = this.res.write(`event: ${c.kind}\ndata: ${JSON.stringify(c.kind === 'actor' ? c.actor : c.event)}\n\n`);
    if (!ok && ++this.queued >= this.ctx.maxQueued) this.congested = true;
  }

  private drained(): void {
    this.queued = 0;
    if (!this.congested) return;
    this.congested = false;
    this.res.write(`event: dropped\ndata: ${JSON.stringify({ count: this.dropped })}\n\n`);
    log.debug(`a slow page missed ${this.dropped} changes`);
    this.dropped = 0;
  }

  end(): void {
    this.res.end();
  }
}
