// The mount actor's door: the pool of worker threads that attach loop devices,
// set up dm-verity and mount images, and the one reader of mountinfo.
export { MountPool, type MountOptions, type MountPoolOptions } from './mount-pool.js';
export { isMountPoint, mountEntries, readMounts, unescapeMountPath, type MountEntry } from './mountinfo.js';
export { dmNameOf, removeVerityDevice } from './dm-verity.js';
