// Typed contract of the addon's fd module (native/fd.cc).
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface FdNative {}
