// Child process for client tests. Mode "client": talks to the console on the
// fd named by NORTHSTAR_CONSOLE (as a container does) and prints what it got
// as one JSON line. Mode "server": serves a console on fd 3 with adopt(fd).
import { Client, ClientError } from '../../src/client/index.js';
import { ConsoleServer } from '../../src/console/server.js';
import { FakeBackend } from './console-fake-backend.js';

const mode = process.argv[2];
if (mode === 'client') {
  const c = await Client.fromEnv();
  const out: Record<string, unknown> = { ident: await c.ident(), list: await c.list() };
  try {
    out.repositories = await c.repositories();
  } catch (e) {
    out.repositories = e instanceof ClientError ? e.kind : String(e);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  c.close();
} else if (mode === 'server') {
  const server = new ConsoleServer(new FakeBackend());
  const h = server.adopt(3, { container: 'child:0.0.1', permissions: ['ident', 'list'] });
  await h.closed;
  await server.close();
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
