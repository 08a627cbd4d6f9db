// Error messages for people: what went wrong with which container, and what
// to do about it. The wire errors are Northstar's (spec/console.md §4.2) and
// some are terse or shared between requests — `stop_container_not_started`
// answers kill, exec, pause and resume alike, `umount_busy` names the running
// container that holds a resource — so the request that failed picks the words.
import type { WireError } from '../model/errors.js';

/** The request a wire error answered (the verbs of nstar). */
export type Action =
  | 'start'
  | 'kill'
  | 'stop'
  | 'exec'
  | 'pause'
  | 'resume'
  | 'mount'
  | 'umount'
  | 'install'
  | 'uninstall'
  | 'inspect'
  | 'copy'
  | 'logs'
  | 'request';

/** What the action does to a container, for "cannot <doing> x". */
const DOING: Record<Action, string> = {
  start: 'start',
  kill: 'signal',
  stop: 'stop',
  exec: 'run a process in',
  pause: 'pause',
  resume: 'resume',
  mount: 'mount',
  umount: 'unmount',
  install: 'install',
  uninstall: 'uninstall',
  inspect: 'inspect',
  copy: 'copy files of',
  logs: 'read the output of',
  request: 'use',
};

/**
 * A message naming what is wrong and what to do, for a wire error the
 * runtime answered to `action` on `container` (the container named in the
 * request; the error may name another, e.g. the user of a resource).
 * `cli` is the command name used in hints ("nstar").
 */
export function explain(action: Action, container: string | undefined, wire: WireError, cli = 'nstar'): string {
  const [code, f] = Object.entries(wire)[0] as [string, Record<string, unknown>];
  const c = container ?? (typeof f.container === 'string' ? f.container : '?');
  const cannot = `cannot ${DOING[action]} ${c}`;
  switch (code) {
    case 'invalid_container':
      return `no container ${f.container} is installed (\`${cli} list\` shows the installed containers)`;
    case 'stop_container_not_started':
      if (action === 'stop') return `${c} is not running: nothing to stop`;
      return `${cannot}: it is not running (start it with \`${cli} start ${c}\`)`;
    case 'start_container_started':
      if (f.container !== c) return `${cannot}: ${f.container}, another version of it, is running (stop it first: \`${cli} stop ${f.container}\`)`;
      return `${c} is already running (\`${cli} stop ${c}\` stops it)`;
    case 'start_container_resource':
      return `${cannot}: it is a resource container (it has no init); start a container that uses it instead`;
    case 'start_container_missing_resource':
      return `${cannot}: it needs resource ${f.resource} version ${f.version}, which is not installed (install it first)`;
    case 'start_container_failed':
      return `${cannot}: ${f.error}`;
    case 'mount_busy':
      return `${c} is already mounted`;
    case 'umount_busy': {
      const by = f.container as string;
      if (action !== 'uninstall' && action !== 'umount') return `${cannot}: ${by} is busy`;
      if (by === c) return `${cannot}: it is running (stop it first: \`${cli} stop ${c}\`)`;
      return `${cannot}: it is a resource in use by ${by}, which is running (stop ${by} first: \`${cli} stop ${by}\`)`;
    }
    case 'invalid_repository':
      return `no repository named "${f.repository}" (\`${cli} repositories\` lists them)`;
    case 'install_duplicate':
      return `cannot install ${f.container}: it is already installed (uninstall it first: \`${cli} uninstall ${f.container}\`)`;
    case 'duplicate_container':
      return `cannot install ${f.container}: a container of that name and version is already installed`;
    case 'invalid_arguments':
      return `${cannot}: invalid arguments: ${f.cause}`;
    case 'configuration':
      return `${cannot}: invalid configuration: ${f.context}`;
    case 'critical_container':
      return `critical container ${f.container} failed: the runtime stops`;
    case 'unexpected':
      return `${cannot}: ${f.error}`;
    default:
      return `${cannot}: ${JSON.stringify(wire)}`;
  }
}
