// A minimal Chrome DevTools Protocol client over --remote-debugging-pipe
// (fd 3: commands to the browser, fd 4: replies and events; each message is
// JSON followed by a NUL byte). Enough for the inspector's browser test:
// open a page, evaluate expressions, wait for a condition, take a screenshot.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export const CHROMIUM = '/usr/bin/chromium';

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buffer = '';
  private readonly exited: Promise<void>;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly profile: string,
  ) {
    const out = proc.stdio[4] as Readable;
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => this.receive(chunk));
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    void this.exited.then(() => {
      for (const p of this.pending.values()) p.reject(new Error('chromium exited'));
      this.pending.clear();
    });
  }

  static launch(size = { width: 1366, height: 768 }): Browser {
    const profile = mkdtempSync(join(tmpdir(), 'nstar-chromium-'));
    const proc = spawn(
      CHROMIUM,
      [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--user-data-dir=${profile}`, `--window-size=${size.width},${size.height}`,
        '--remote-debugging-pipe', 'about:blank',
      ],
      // Its own process group: close() ends the helper processes (zygote, renderers) with it.
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'], detached: true },
    );
    return new Browser(proc, profile);
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let nul: number;
    while ((nul = this.buffer.indexOf('\0')) >= 0) {
      const msg = JSON.parse(this.buffer.slice(0, nul)) as { id?: number; result?: unknown; error?: { message: string } };
      this.buffer = this.buffer.slice(nul + 1);
      const p = msg.id === undefined ? undefined : this.pending.get(msg.id);
      if (!p) continue;
      this.pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
      else p.resolve(msg.result);
    }
  }

  send<T = Record<string, unknown>>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = this.nextId++;
    const input = this.proc.stdio[3] as Writable;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      input.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }

  /** Opens `url` in a new tab; returns the session for page commands. */
  async open(url: string): Promise<Tab> {
    const { targetId } = await this.send<{ targetId: string }>('Target.createTarget', { url });
    const { sessionId } = await this.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    return new Tab(this, sessionId);
  }

  /** SIGKILLs what is left of the browser's process group and waits until it is gone. */
  private async killGroup(): Promise<void> {
    const pgid = this.proc.pid!;
    for (let i = 0; i < 200 && groupMembers(pgid).length > 0; i++) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // ESRCH: already gone
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    try {
      await Promise.race([this.send('Browser.close'), new Promise((r) => setTimeout(r, 2000))]);
    } catch {
      // already gone
    }
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
    await this.killGroup();
    // Chromium's helper processes may still be writing the profile for a moment after the browser exits.
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

/** Pids whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc').flatMap((d) => {
    if (!/^\d+$/.test(d)) return [];
    try {
      // Field 5 of /proc/<pid>/stat (after the parenthesised name) is the process group.
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

export class Tab {
  constructor(
    private readonly browser: Browser,
    private readonly sessionId: string,
  ) {}

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.browser.send<{ result: { value?: T }; exceptionDetails?: { text: string } }>(
      'Runtime.evaluate',
      { expression, returnByValue: true, awaitPromise: true },
      this.sessionId,
    );
    if (r.exceptionDetails) throw new Error(`evaluate ${expression}: ${r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Re-checks `expression` in the page (every 25 ms) until it is truthy. */
  async waitFor(expression: string, what: string, timeoutMs = 10_000): Promise<void> {
    const poll = `new Promise((resolve) => {
      const end = Date.now() + ${timeoutMs};
      // Before the page has loaded, the expression may throw: that is "not yet".
      const holds = () => { try { return ${expression}; } catch { return false; } };
      const check = () => { if (holds()) resolve(true); else if (Date.now() > end) resolve(false); else setTimeout(check, 25); };
      check();
    })`;
    for (let attempt = 0; ; attempt++) {
      try {
        if (await this.evaluate<boolean>(poll)) return;
        throw new Error(`timed out waiting for ${what}`);
      } catch (e) {
        // A navigation still in progress replaces the page's context: evaluate again in the new one.
        if (attempt < 20 && /context was destroyed|Cannot find context/.test((e as Error).message)) continue;
        throw e;
      }
    }
  }

  async navigate(url: string): Promise<void> {
    await this.browser.send('Page.navigate', { url }, this.sessionId);
  }

  /** Gives a file input its files, as a user picking them would. */
  async setFiles(selector: string, files: string[]): Promise<void> {
    const { root } = await this.browser.send<{ root: { nodeId: number } }>('DOM.getDocument', {}, this.sessionId);
    const { nodeId } = await this.browser.send<{ nodeId: number }>('DOM.querySelector', { nodeId: root.nodeId, selector }, this.sessionId);
    await this.browser.send('DOM.setFileInputFiles', { nodeId, files }, this.sessionId);
  }

  /** Fixes the page's viewport (the window's size includes no browser chrome in headless mode, but be exact). */
  async setViewport(width: number, height: number): Promise<void> {
    await this.browser.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }, this.sessionId);
  }

  /** Dispatches a real mouse click at page coordinates. */
  async click(x: number, y: number): Promise<void> {
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.browser.send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1 }, this.sessionId);
    }
  }

  async screenshot(): Promise<Buffer> {
    const { data } = await this.browser.send<{ data: string }>('Page.captureScreenshot', { format: 'png' }, this.sessionId);
    return Buffer.from(data, 'base64');
  }
}
