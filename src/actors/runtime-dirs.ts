// The runtime's own directories (spec/README.md deviation 23): made with
// explicit modes whatever umask the daemon inherited, and refused at startup
// when anyone but root could write to them. Whoever can write to a repository
// directory can replace the NPKs the runtime mounts (and, with userspace
// verity, the file after it was checked); to run_dir, data_dir or socket_dir,
// can plant a symlink where the runtime, as root, makes mount points, chowns
// persist dirs or binds sockets. Main thread, before anything else touches
// these paths.
import { chmodSync, lstatSync, mkdirSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';

import { parseBindUrl, type Config } from '../model/config.js';

export interface RuntimeDir {
  path: string;
  /** The mode it is made with when missing. */
  mode: number;
  /** What it is, for messages ("run_dir", "repository default"). */
  what: string;
  /** What someone who could write to it could do: the "why" of a refusal. */
  risk: string;
  /** Check the files in it too (a repository's NPKs: userspace verity checks each once, at mount). */
  files?: boolean;
}

/** Parents made on the way to a runtime dir: traversable, like mkdir -p under umask 022. */
const PARENT_MODE = 0o755;

/**
 * The directories the runtime works in, each with the mode it gets when made:
 * - run_dir 0711: mount points; the console socket and socket_dir may lie
 *   below it, so others may pass through, but not list it;
 * - data_dir 0700: containers' persist dirs are bind-mounted by root;
 * - socket_dir 0755: bind-mounted into containers whose uid is not root;
 * - repository dirs 0700: only root reads NPKs;
 * - the directory of a unix console socket 0711 (socket_group members pass).
 */
export function runtimeDirs(config: Config): RuntimeDir[] {
  const dirs: RuntimeDir[] = [
    { path: config.runDir, mode: 0o711, what: 'run_dir', risk: 'could plant a symlink where the runtime makes mount points' },
    { path: config.dataDir, mode: 0o700, what: 'data_dir', risk: "could plant a symlink where the runtime chowns containers' persist dirs" },
    { path: config.socketDir, mode: 0o755, what: 'socket_dir', risk: 'could plant a symlink where the runtime binds container sockets' },
  ];
  for (const [id, r] of Object.entries(config.repositories)) {
    if (r.type === 'mem') continue;
    dirs.push({ path: r.type.fs.dir, mode: 0o700, what: `repository ${id}`, risk: 'could replace the NPKs the runtime mounts', files: true });
  }
  const g = config.console.global;
  if (g) {
    const bind = parseBindUrl(g.bind);
    if (bind.kind === 'unix') {
      dirs.push({ path: dirname(bind.path), mode: 0o711, what: 'the console socket directory', risk: 'could put another socket in place of the console' });
    }
  }
  return dirs;
}

/** Makes every runtime dir that is missing, then refuses any that others could write to. Throws with the reason. */
export function prepareDirs(config: Config): void {
  const dirs = runtimeDirs(config);
  // Parents first, so a dir nested in another (socket_dir in run_dir) gets its own mode.
  const byDepth = [...dirs].sort((a, b) => a.path.split('/').length - b.path.split('/').length);
  for (const d of byDepth) makeDir(d.path, d.mode);
  for (const d of dirs) checkDir(d);
}

/** mkdir -p whose new directories get `mode` (the last) and PARENT_MODE (the others), whatever the umask. */
export function makeDir(path: string, mode: number): void {
  const missing: string[] = [];
  for (let p = path; !exists(p); p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    mkdirSync(p);
    // mkdir(2) applies the umask: the mode is set afterwards.
    chmodSync(p, p === path ? mode : PARENT_MODE);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuses a runtime dir that someone other than root could change: the dir
 * (after symlinks) must be a directory owned by root (or the runtime's uid)
 * without group or other write permission, and so must each directory above
 * it, except sticky ones owned by root (such as /tmp), where others cannot
 * rename what is not theirs. With `files`, the same holds for each file in it.
 */
export function checkDir(d: RuntimeDir): void {
  const refuse = (why: string, fix: string): never => {
    throw new Error(`${d.what} ${d.path}: ${why}; whoever can write there ${d.risk}. ${fix}`);
  };
  const real = realpathSync(d.path);
  const st = statSync(real);
  if (!st.isDirectory()) throw new Error(`${d.what} ${d.path}: is not a directory`);
  const own = process.geteuid?.() ?? 0;
  const check = (p: string, s: Stats, where: string, sticky: boolean) => {
    if (s.uid !== 0 && s.uid !== own) refuse(`owned by uid ${s.uid}${where}, not by root`, `chown root ${p}`);
    if ((s.mode & 0o022) !== 0 && !sticky) {
      const who = (s.mode & 0o002) !== 0 ? 'anyone' : 'its group';
      refuse(`writable by ${who}${where} (mode ${octal(s.mode & 0o7777)})`, `Make it writable by root only (chmod go-w ${p}).`);
    }
  };
  for (let p = real, top = true; ; p = dirname(p), top = false) {
    const s = top ? st : statSync(p);
    const where = p === d.path ? '' : p === real ? ` (its real path ${p})` : ` (its parent ${p})`;
    check(p, s, where, !top && (s.mode & 0o1000) !== 0 && s.uid === 0);
    if (dirname(p) === p) break;
  }
  // A file others can write is changed in place without touching the directory.
  if (!d.files) return;
  for (const name of readdirSync(real)) {
    const p = join(real, name);
    let s: Stats;
    try {
      s = statSync(p);
    } catch {
      continue; // a dangling link: the repository reports what it cannot read
    }
    check(p, s, ` (its file ${name})`, false);
  }
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}
