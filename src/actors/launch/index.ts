// The launch actor's door: starting a container's nstar-init from a launch
// spec, exec beside it, and the pool of prepared network namespaces.
export { launch, type LaunchedExec, type LaunchedContainer, type LaunchOptions } from './launch.js';
export { NetnsPool } from './netns-pool.js';
