// The in-process transport: a Client of a Runtime this process hosts, over
// socketpairs its console server serves (no socket file, the same protocol
// code as over a unix or TCP console). Imports the Runtime as a type only,
// so the client stays loadable without the native addon.
import type { Runtime } from '../runtime.js';
import { Client, type ConnectOptions } from './index.js';

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
export async function embedded(runtime: Runtime, o: EmbeddedOptions = {}): Promise<Client> {
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
