// Typed contract of the addon's loop module (native/loop.cc).
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface LoopNative {}
