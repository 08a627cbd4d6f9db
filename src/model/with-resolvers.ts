// A promise with its resolve and reject handed out, for whoever settles it
// later (ES2024's Promise.withResolvers, which Node 20 lacks), and whether it
// has been settled yet.

export interface Deferred<T> {
  readonly promise: Promise<T>;
  /** True once resolve or reject was called (later calls do nothing, as with any promise). */
  readonly settled: boolean;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function withResolvers<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let settled = false;
  return {
    promise,
    get settled() {
      return settled;
    },
    resolve(value) {
      settled = true;
      resolve(value);
    },
    reject(error) {
      settled = true;
      reject(error);
    },
  };
}
