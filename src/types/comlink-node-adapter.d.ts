// comlink ships its Node adapter as an ES module without a declaration of its
// own: a Worker or MessagePort (on/off/postMessage) becomes the Endpoint that
// wrap() and expose() take (Node's ports have no addEventListener of the DOM's shape).
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  import type { Transferable } from 'node:worker_threads';

  export interface NodeEndpoint {
    postMessage(message: unknown, transfer?: readonly Transferable[]): void;
    on(type: 'message', listener: (value: any) => void): unknown;
    off(type: 'message', listener: (value: any) => void): unknown;
    start?: () => void;
  }
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
