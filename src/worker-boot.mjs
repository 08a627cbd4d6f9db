// Thread entry for TypeScript worker modules. Node 20 does not carry tsx's
// loader hooks into worker threads, so a worker starts here, registers tsx in
// its own thread, then loads the real entry named in workerData.__entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
const mod = await import(workerData.__entry);
export default mod.default;
