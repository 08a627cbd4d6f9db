// A console url, read the same way by the configuration check, the console
// server that binds it and the client that connects to it.
import { DEFAULT_CONSOLE_PORT } from './console-options.js';

export type BindAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * "tcp://host[:port]" (default port 4200; an IPv6 host in brackets) or
 * "unix:///absolute/path" (the path as written after "unix://"). Throws an
 * Error naming the url and what is wrong with it.
 */
export function parseBindUrl(url: string): BindAddress {
  const invalid = (why: string) => new Error(`invalid console url "${url}": ${why}`);
  if (url.startsWith('unix://')) {
    const path = url.slice('unix://'.length);
    if (path === '' || path === '/') throw invalid('unix needs a socket path');
    return { kind: 'unix', path };
  }
  if (url.startsWith('tcp://')) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw invalid('expected tcp://host[:port]');
    }
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    if (host === '') throw invalid('tcp needs a host');
    return { kind: 'tcp', host, port: u.port === '' ? DEFAULT_CONSOLE_PORT : Number(u.port) };
  }
  throw invalid('the scheme must be tcp or unix');
}
