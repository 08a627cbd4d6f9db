// The lane's guest kernel: Debian's own kernel package (the one the
// `linux-image-amd64` metapackage depends on), fetched with `apt-get download`
// and unpacked with `dpkg -x` — never installed into the host — plus a small
// initramfs: busybox-static, the modules the runtime needs, and init.sh.
// Both are cached under /var/tmp/northstar-kernel/<version>/, keyed by what
// goes in, so a second run downloads and builds nothing.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CACHE = process.env.NSTAR_KERNEL_CACHE ?? '/var/tmp/northstar-kernel';
const INIT = join(dirname(fileURLToPath(import.meta.url)), 'init.sh');
const BUSYBOX = '/bin/busybox';

/**
 * What the guest loads: virtio and 9p for the shares, virtio_blk for the
 * disk io.max limits, loop and squashfs for NPKs, dm-verity (which pulls
 * dm-mod, dm-bufio and reed_solomon) for keyed repositories, overlay for
 * a writable test/fixtures/out over the read-only host root.
 */
const MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'virtio_blk', 'loop', 'squashfs', 'dm-verity', 'overlay'];

export interface GuestKernel {
  version: string;
  vmlinuz: string;
  initramfs: string;
}

/** A prerequisite of the lane is missing: the lane skips (or fails under CI) with this reason. */
export class Missing extends Error {}

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
}

/** `linux-image-6.1.0-NN-amd64`: the package the metapackage depends on now. */
export function kernelPackage(): string {
  let out: string;
  try {
    out = run('apt-cache', ['depends', 'linux-image-amd64']);
  } catch (e) {
    throw new Missing(`apt-cache depends linux-image-amd64 failed: ${(e as Error).message.split('\n')[0]}`);
  }
  const pkg = /Depends: (linux-image-\S+)/.exec(out)?.[1];
  if (!pkg) throw new Missing('no kernel package behind linux-image-amd64 (run apt-get update)');
  return pkg;
}

/** The cached .deb of `pkg`, downloaded on first use; undefined when the download failed. */
function kernelDeb(pkg: string): string | undefined {
  mkdirSync(CACHE, { recursive: true });
  const cached = () => readdirSync(CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!cached()) {
    // Downloaded aside and renamed in: a lane running beside never sees half a file.
    const tmp = mkdtempSync(join(CACHE, '.download-'));
    try {
      // As root, apt's sandbox user could not write here: download as root.
      run('apt-get', ['download', '-o', 'APT::Sandbox::User=root', pkg], tmp);
      for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(CACHE, f));
    } catch {
      return undefined;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const f = cached();
  if (!f) return undefined;
  // Only the current kernel is kept: an older .deb and its build go.
  for (const old of readdirSync(CACHE).filter((e) => e.startsWith('linux-image-') && e !== f)) rmSync(join(CACHE, old), { force: true });
  for (const old of readdirSync(CACHE).filter((e) => /^\d/.test(e) && !pkg.endsWith(e))) rmSync(join(CACHE, old), { recursive: true, force: true });
  return join(CACHE, f);
}

/** The kernel package's .deb; stale package lists (the package is gone from the archive) are updated once. */
function download(): { pkg: string; deb: string } {
  let pkg = kernelPackage();
  let deb = kernelDeb(pkg);
  if (!deb) {
    run('apt-get', ['update', '-qq']);
    pkg = kernelPackage();
    deb = kernelDeb(pkg);
  }
  if (!deb) throw new Missing(`apt-get download ${pkg} failed`);
  return { pkg, deb };
}

/** The modules' .ko paths below `root`, each after its dependencies (kmod's modprobe reads the modules.dep of `depmod -b`). */
function moduleOrder(root: string, version: string): string[] {
  run('depmod', ['-b', root, version]);
  const order: string[] = [];
  for (const m of MODULES) {
    for (const line of run('modprobe', ['-d', root, '-S', version, '--show-depends', m]).split('\n')) {
      const ko = /^insmod (\S+)/.exec(line)?.[1];
      if (ko && !order.includes(ko)) order.push(ko);
    }
  }
  return order;
}

function requireTools(): void {
  for (const tool of ['apt-cache', 'apt-get', 'dpkg', 'depmod', 'modprobe', 'cpio', 'gzip']) {
    try {
      run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Missing(`no ${tool} (apt-get install kmod cpio)`);
    }
  }
  if (!existsSync(BUSYBOX)) throw new Missing(`no ${BUSYBOX} (apt-get install busybox-static)`);
}

/** Where the kernel of `pkg` and an initramfs made of the current inputs are cached. */
function cached(pkg: string): GuestKernel {
  const version = pkg.replace(/^linux-image-/, '');
  const key = createHash('sha256').update(readFileSync(INIT)).update(MODULES.join(' ')).update(readFileSync(BUSYBOX)).digest('hex').slice(0, 12);
  const dir = join(CACHE, version);
  return { version, vmlinuz: join(dir, 'vmlinuz'), initramfs: join(dir, `initramfs-${key}.cpio.gz`) };
}

/**
 * Unpacks the kernel package and builds the initramfs; both are renamed into
 * place last, so a killed run leaves no half-built cache and a lane running
 * beside sees either nothing or whole files.
 */
function build(deb: string, kernel: GuestKernel): void {
  const dir = dirname(kernel.initramfs);
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(CACHE, '.build-'));
  try {
    const root = join(work, 'pkg');
    run('dpkg', ['-x', deb, root]);
    const initrd = join(work, 'initrd');
    for (const d of ['bin', 'modules', 'proc', 'sys', 'dev']) mkdirSync(join(initrd, d), { recursive: true });
    copyFileSync(BUSYBOX, join(initrd, 'bin/busybox'));
    copyFileSync(INIT, join(initrd, 'init'));
    const order = moduleOrder(root, kernel.version);
    for (const ko of order) copyFileSync(ko, join(initrd, 'modules', basename(ko)));
    writeFileSync(join(initrd, 'modules/order'), order.map((ko) => basename(ko)).join('\n') + '\n');
    run('chmod', ['0755', join(initrd, 'init'), join(initrd, 'bin/busybox')]);
    run('sh', ['-c', 'find . | cpio -o -H newc --quiet | gzip -1 > ../initramfs.cpio.gz'], initrd);
    copyFileSync(join(root, 'boot', `vmlinuz-${kernel.version}`), join(work, 'vmlinuz'));
    renameSync(join(work, 'vmlinuz'), kernel.vmlinuz);
    renameSync(join(work, 'initramfs.cpio.gz'), kernel.initramfs);
    for (const f of readdirSync(dir)) if (f.startsWith('initramfs-') && join(dir, f) !== kernel.initramfs) rmSync(join(dir, f), { force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The kernel and initramfs for the guest, built once per kernel version and inputs. */
export function guestKernel(): GuestKernel {
  requireTools();
  const now = cached(kernelPackage());
  if (existsSync(now.vmlinuz) && existsSync(now.initramfs)) return now;
  const { pkg, deb } = download();
  const kernel = cached(pkg);
  build(deb, kernel);
  return kernel;
}
