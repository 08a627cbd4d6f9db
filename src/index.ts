// The package's main entry ("northstar-ts"): the console client, the
// configuration reader and the wire error types. Importing it only defines
// things: no config is parsed, no socket opened, no native code loaded.
// The runtime itself runs as the `northstar` daemon (bin/northstar); the
// client (also "northstar-ts/client") talks to it.
export * from './client/index.js';
export { embedded, type ConsoleHost, type EmbeddedOptions } from './client/embedded.js';
export { ConfigError, EMBEDDED_DEFAULT_CONFIG, parseConfig, type Config } from './model/config.js';
export { loadConfig } from './config-file.js';
export { RuntimeError, type ErrorCode, type ExitStatus, type WireError } from './model/errors.js';
export { VERSION } from './model/version.js';
