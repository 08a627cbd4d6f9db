// Typed contract of the addon's process module (native/process.cc).
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface ProcessNative {}
