// The guest tests' NPKs. The lane packs them on the host before it boots
// (test/kernel/lane.ts): packing under TCG takes seconds per NPK. The guest
// then finds them in test/fixtures/out by the same cache key; one it lacks
// (e.g. io(), which needs the guest's disk numbers) is packed there, into a
// tmpfs overlay.
import { fixtureNpk } from '../../fixtures/npk.js';
import { PIPE } from '../../integration/runtime-checks.js';

const MiB = 1024 * 1024;

/** One squashfs block (< 128 KiB, no compression, no fragments): every line lies in plain bytes in fs.img. */
export const VERITY_LINE = 'verity marker: the content of data.txt as packed\n';
export const VERITY_DATA = VERITY_LINE.repeat(1200);

export function verity(name: string) {
  return fixtureNpk({ name, key: true, compression: 'none', files: { '/data.txt': VERITY_DATA }, manifest: { args: ['sleep'], io: PIPE } });
}

function probe(name: string, manifest: Record<string, unknown>) {
  return fixtureNpk({ name, key: true, manifest: { args: ['sleep'], io: PIPE, ...manifest } });
}

/** A memory limit of 32 MiB, memory.low from the soft limit, no swap, and the OOM monitor. */
export const memory = () =>
  probe('memory', {
    cgroups: { memory: { oom_monitor: true, memory_hard_limit: 32 * MiB, memory_soft_limit: 16 * MiB, memory_swap_limit: 0 } },
  });

/** 1024 shares and a quota of 20 ms per 100 ms, burning cpu. */
export const cpu = () => probe('cpu', { args: ['burn'], cgroups: { cpu: { shares: 1024, quota: 20_000, period: 100_000 } } });

/** Counts every 100 ms: pause must stop the count. */
export const counter = () => probe('counter', { args: ['count', '100'] });

/** Three children beside the container's process. */
export const forks = () => probe('forks', { args: ['fork', '3'] });

/** A blkio weight and throttles on the block device `dev` ("major:minor"). */
export function io(dev: string) {
  const [major, minor] = dev.split(':').map(Number);
  const d = { major, minor };
  return probe('io', {
    cgroups: {
      blkio: {
        weight: 500,
        weight_device: [],
        throttle_read_bps_device: [{ ...d, rate: MiB }],
        throttle_read_iops_device: [],
        throttle_write_bps_device: [],
        throttle_write_iops_device: [{ ...d, rate: 100 }],
      },
    },
  });
}

/** Packs every NPK that does not depend on the guest. */
export function packOnHost(): Promise<string[]> {
  return Promise.all([verity('verity'), verity('tree'), memory(), cpu(), counter(), forks()]);
}
