// The copy actor's door: tar streams into and out of a running container's
// root, moved by a worker thread.
export { copyIn, copyOut, openRoot, type CopyTarget } from './copy.js';
