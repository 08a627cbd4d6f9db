// How to start a worker thread whose entry is a TypeScript module.
// Use: new Worker(...workerArgs(url)) or Piscina({ ...piscinaEntry(url) }).

/** Filename and workerData for a worker whose entry module is `entry`. */
export function workerEntry(entry: URL, workerData: Record<string, unknown> = {}): {
  filename: string;
  workerData: Record<string, unknown>;
} {
  if (!entry.pathname.endsWith('.ts')) return { filename: entry.href, workerData };
  return {
    filename: new URL('./worker-boot.mjs', import.meta.url).href,
    workerData: { ...workerData, __entry: entry.href },
  };
}
