// The console module's public face for the runtime: the server, its backend
// interface, the wire types, and `startConsole`, which reads the parts of the
// runtime configuration the console uses.
import { ConsoleServer, type ConsoleBackend, type ConsoleOptions } from './server.js';
import type { TokenAuthority } from './token.js';

export * from './protocol.js';
export * from './server.js';
export { permissionSet, requiredPermission, formatPermissions, CONSOLE_PERMISSIONS, EXTENSION_PERMISSIONS } from './permissions.js';
export type { ConsolePermission, Permissions } from './permissions.js';
export { TokenAuthority, tokens } from './token.js';

/** The slice of the runtime's Config (src/model/config.ts) the console reads. */
export interface ConsoleConfig {
  notificationBufferSize: number;
  /** Overall deadline of one install stream; absent: proportional to its size. */
  installTimeoutMs?: number;
  console: {
    global?: {
      bind: string;
      permissions: 'full' | readonly string[];
      options?: Partial<ConsoleOptions>;
      socketMode?: number;
      socketGroup?: string | number;
    };
    /** Options of container consoles. */
    options: Partial<ConsoleOptions>;
  };
}

/**
 * A console server for `config`: listening on `console.global.bind` when a
 * global console is configured; container consoles are added with
 * `server.adopt(fd, {container, permissions: manifest.console.permissions})`.
 */
export async function startConsole(
  config: ConsoleConfig,
  backend: ConsoleBackend,
  o: { tokens?: TokenAuthority } = {},
): Promise<{ server: ConsoleServer; url?: string }> {
  const server = new ConsoleServer(backend, {
    notificationBufferSize: config.notificationBufferSize,
    containerOptions: config.console.options,
    installTimeoutMs: config.installTimeoutMs,
    tokens: o.tokens,
  });
  const g = config.console.global;
  if (!g) return { server };
  try {
    const url = await server.listen(g.bind, g.permissions, g.options ?? {}, { mode: g.socketMode, group: g.socketGroup });
    return { server, url };
  } catch (e) {
    await server.close();
    throw new Error(`console: cannot listen on ${g.bind}: ${(e as Error).message}`, { cause: e });
  }
}
