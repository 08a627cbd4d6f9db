// How to start a worker thread whose entry is a TypeScript module.
// Use: new Worker(...workerArgs(url)) or Piscina({ ...piscinaEntry(url) }).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Filename and workerData for a worker whose entry module is `entry`. */
export function workerEntry(entry: URL, workerData: Record<string, unknown> = {}): {
  filename: string;
  workerData: Record<string, unknown>;
} {
  if (!entry.pathname.endsWith('.ts')) return { filename: entry.href, workerData };
  // Running compiled (dist/, scripts/build-js.mjs): the entry is a .js sibling
  // and the worker needs no TypeScript loader.
  const js = new URL(entry.href.replace(/\.ts$/, '.js'));
  if (!existsSync(fileURLToPath(entry)) && existsSync(fileURLToPath(js))) return { filename: js.href, workerData };
  return {
    filename: new URL('./worker-boot.mjs', import.meta.url).href,
    workerData: { ...workerData, __entry: entry.href },
  };
}
