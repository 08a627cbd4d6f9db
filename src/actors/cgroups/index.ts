// The cgroups actor's door: the runtime's tree of cgroups (v1 controllers and
// the v2 hierarchy) and each container's group in it. Main thread.
export { CgroupTree, containerHierarchies, type ContainerOptions, type TreeOptions } from './cgroups.js';
export { ContainerCgroups, EMPTY_TIMEOUT_MS, FREEZE_TIMEOUT_MS } from './cgroup-container.js';
export type { CgroupLayout, Hierarchy } from './cgroup-layout.js';
export type { CgroupStats, StatCategory } from './cgroup-stats.js';
