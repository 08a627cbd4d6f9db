// OOM monitors of a container's memory cgroup (manifest memory.oom_monitor).
//  v1: an eventfd registered through cgroup.event_control on memory.oom_control;
//      the addon polls it on the main loop (uv_poll, no thread). Payload per
//      spec/README.md deviation 18: oom = what the eventfd counted, oom_kill
//      from memory.oom_control, every other field null.
//  v2: inotify (fs.watch) on memory.events; each change carries the parsed
//      counters (spec/launch.md §5.7).
// Main thread.
import { closeSync, openSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

import type { Logger } from '../../log.js';
import type { MemoryEvent } from '../../machines/contracts.js';
import { native } from '../../native.js';
import { fileError, parseFlatKeyed, readCgroupFile, readOptional, writeCgroupFile } from './cgroup-files.js';

export interface OomMonitor {
  /** Stops listening; no event is delivered after it returns. Idempotent. */
  stop(): void;
}

/** memory.events (v2) as the notification's counters; oom_group_kill is dropped (spec/console.md §4.3). */
export function parseMemoryEvents(text: string): MemoryEvent {
  const c = parseFlatKeyed(text);
  return { low: c.low ?? null, high: c.high ?? null, max: c.max ?? null, oom: c.oom ?? null, oom_kill: c.oom_kill ?? null };
}

/** The v1 event for `count` eventfd signals (deviation 18). */
export function v1OomEvent(count: number, oomControl: string | undefined): MemoryEvent {
  const oc = parseFlatKeyed(oomControl ?? '');
  return { low: null, high: null, max: null, oom: count, oom_kill: oc.oom_kill ?? null };
}

export function watchOomV1(memoryDir: string, onEvent: (m: MemoryEvent) => void, log: Logger): OomMonitor {
  const n = native();
  const oomControl = join(memoryDir, 'memory.oom_control');
  const efd = n.eventfd();
  let ofd: number | undefined;
  try {
    try {
      ofd = openSync(oomControl, 'r');
    } catch (e) {
      throw fileError(e, 'open', oomControl);
    }
    // The kernel keeps the eventfd, not the oom_control fd: ours can close.
    writeCgroupFile(join(memoryDir, 'cgroup.event_control'), `${efd} ${ofd}`);
  } catch (e) {
    closeSync(efd);
    throw e;
  } finally {
    if (ofd !== undefined) closeSync(ofd);
  }
  let stopped = false;
  let w: { close(): void };
  try {
    w = n.eventfdWatch(efd, (err, count) => {
      if (stopped) return;
      if (err) {
        log.warn(`oom monitor of ${memoryDir} ended: ${err.message}`);
        return;
      }
      onEvent(v1OomEvent(count, readOptional(oomControl)));
    });
  } catch (e) {
    closeSync(efd);
    throw e;
  }
  return {
    // Closing the eventfd also unregisters the event in the kernel. It must
    // happen before rmdir: removing the cgroup signals the eventfd once more.
    stop() {
      stopped = true;
      w.close();
    },
  };
}

export function watchOomV2(memoryDir: string, onEvent: (m: MemoryEvent) => void, log: Logger): OomMonitor {
  const path = join(memoryDir, 'memory.events');
  let stopped = false;
  let last = readCgroupFile(path);
  let watcher: FSWatcher;
  try {
    watcher = watch(path, { persistent: true }, () => {
      if (stopped) return;
      let text: string;
      try {
        text = readCgroupFile(path);
      } catch (e) {
        log.warn(`oom monitor: ${(e as Error).message}`);
        return;
      }
      // inotify may report one kernel notification more than once.
      if (text === last) return;
      last = text;
      onEvent(parseMemoryEvents(text));
    });
  } catch (e) {
    throw fileError(e, 'inotify_add_watch', path);
  }
  watcher.on('error', (e) => log.warn(`oom monitor of ${path}: ${e.message}`));
  return {
    stop() {
      stopped = true;
      watcher.close();
    },
  };
}
