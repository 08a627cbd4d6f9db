// Typed contract of the addon's cgroup module (native/cgroup.cc).
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface CgroupNative {}
