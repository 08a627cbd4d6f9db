// The package's install script. Two cases:
//
// - This repository (`npm ci` in a checkout): build the native parts (the
//   addon and nstar-init) and the CLI bundles; a failure fails the install,
//   the tests and the daemon need both.
// - A dependency of another project (we are under node_modules/): the
//   JavaScript is prebuilt in the package (dist/, made by prepack), and the
//   native parts are only needed by the runtime (the `northstar` daemon),
//   never by the client. They are built when a C toolchain is there, and
//   otherwise skipped with a note: a project that only uses the client
//   installs without cc, make or python. NORTHSTAR_NATIVE=skip never builds,
//   NORTHSTAR_NATIVE=require fails without them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dependency = root.split(sep).includes('node_modules');
const mode = process.env.NORTHSTAR_NATIVE ?? (dependency ? 'auto' : 'require');

function run(script) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', script)], { cwd: root, stdio: 'inherit' });
  return r.status ?? 1;
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

if (mode !== 'skip') {
  const missing = ['cc', 'c++', 'make', 'python3'].filter((c) => !have(c));
  if (mode === 'auto' && missing.length > 0) {
    console.log(
      `northstar-ts: no ${missing.join(', ')}: the native parts of the runtime are not built. ` +
        'The client works; to run the daemon, install a C toolchain (apt-get install build-essential python3) ' +
        'and run `npm rebuild northstar-ts`.',
    );
  } else {
    const code = run('build-native.mjs');
    if (code !== 0) {
      if (mode === 'require') process.exit(code);
      console.log('northstar-ts: building the native parts failed (see above): the client works, the daemon does not.');
    }
  }
}
// The bundles ship prebuilt in the package; a checkout builds them.
if (!dependency || !existsSync(join(root, 'dist', 'cli', 'nstar.js'))) process.exit(run('build-js.mjs'));
