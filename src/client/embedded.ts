// The in-process transport: a Client of a Runtime this process hosts, over
// socketpairs its console server serves (no socket file, the same protocol
// code as over a unix or TCP console). The runtime is named by the one
// method used, not imported: the client (and the library build) stays free
// of the runtime and its native addon.
import type { Duplex } from 'node:stream';

import { Client, type ConnectOptions } from './index.js';

/** What `embedded` needs of a runtime: `Runtime` (src/runtime.ts) has it. */
export interface ConsoleHost {
  /** A new console connection served in this process with `permissions`. */
  openConsole(permissions: 'full' | readonly string[]): Duplex;
}

export interface EmbeddedOptions extends ConnectOptions {
  /** The console permissions of the connections (default "full"). */
  permissions?: 'full' | readonly string[];
}

/**
 * A console client of `runtime`, in process: the same `Client` and container
 * handle as `connect(url)` gives, for tests and programs that host the
 * runtime themselves. Attached requests (exec, copyOut) open further
 * connections the same way.
 */
export async function embedded(runtime: ConsoleHost, o: EmbeddedOptions = {}): Promise<Client> {
  const { permissions = 'full', ...opts } = o;
  const redial = async (): Promise<Client> => {
    const d = await Client.fromStream(runtime.openConsole(permissions), { ...opts, subscribe: false });
    d.redial = redial;
    return d;
  };
  const c = await Client.fromStream(runtime.openConsole(permissions), opts);
  c.redial = redial;
  return c;
}
