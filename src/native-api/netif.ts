// Typed contract of the addon's netif module (native/netif.cc).

export interface NetAddress {
  family: 'inet' | 'inet6';
  address: string;
  prefix: number;
}

export interface NetInterface {
  name: string;
  /** Hardware address, lower case with colons; null when the interface has none. */
  mac: string | null;
  up: boolean;
  running: boolean;
  loopback: boolean;
  addresses: NetAddress[];
}

export interface NetifNative {
  /** The interfaces of the network namespace of `pid` (read from a short-lived thread that joined it). */
  netInterfaces(pid: number, cb: (err: Error | null, interfaces?: NetInterface[]) => void): void;
}

/** Promise form of netInterfaces. */
export function netInterfacesOf(n: NetifNative, pid: number): Promise<NetInterface[]> {
  return new Promise((resolve, reject) => n.netInterfaces(pid, (e, r) => (e ? reject(e) : resolve(r!))));
}
