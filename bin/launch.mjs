// Entry of the package's executables: registers tsx (TypeScript without a
// build step) and runs src/cli/<name>.ts, whose `main(argv)` resolves to the
// exit code.
import { register } from 'tsx/esm/api';

register();
const [name, ...argv] = process.argv.slice(2);
const cli = await import(new URL(`../src/cli/${name}.ts`, import.meta.url).href);
process.exitCode = await cli.main(argv);
