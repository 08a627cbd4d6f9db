// Typed contract of the addon's dm module (native/dm.cc).
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface DmNative {}
