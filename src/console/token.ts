// Console tokens (spec/console.md §4.5, Northstar runtime/token.rs): a
// container proves to another one that it asked the runtime for a token
// naming the other as target. Tokens live only as long as the process.
//
//   token = be_u64(secs) || HMAC(key, be_u128(secs*1000) || H(user) || H(target) || H(shared))
//   H(x)  = HMAC(key, x), key = 32 random bytes per process, secs since first use.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import type { VerificationResult } from './protocol.js';

export const TOKEN_LENGTH = 40;

export interface TokenClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
}

const monotonic: TokenClock = { now: () => performance.now() };

export class TokenAuthority {
  private start: number | undefined;

  constructor(
    private readonly key: Buffer = randomBytes(32),
    private readonly clock: TokenClock = monotonic,
  ) {}

  /** Milliseconds since the first use (Northstar's START is a lazy static). */
  private elapsedMs(): number {
    const now = this.clock.now();
    this.start ??= now;
    return now - this.start;
  }

  private h(x: Buffer | string): Buffer {
    return createHmac('sha256', this.key).update(x).digest();
  }

  private mac(secs: bigint, user: string, target: string, shared: Buffer): Buffer {
    const time = Buffer.alloc(16);
    const ms = secs * 1000n;
    time.writeBigUInt64BE(ms >> 64n, 0);
    time.writeBigUInt64BE(ms & 0xffff_ffff_ffff_ffffn, 8);
    return createHmac('sha256', this.key)
      .update(time)
      .update(this.h(user))
      .update(this.h(target))
      .update(this.h(shared))
      .digest();
  }

  /** A token from `user` for `target`, bound to `shared`: 40 bytes, base64 with padding. */
  create(user: string, target: string, shared: Buffer): string {
    const secs = BigInt(Math.floor(this.elapsedMs() / 1000));
    const out = Buffer.alloc(TOKEN_LENGTH);
    out.writeBigUInt64BE(secs, 0);
    this.mac(secs, user, target, shared).copy(out, 8);
    return out.toString('base64');
  }

  /**
   * Checks a token that `user` claims to have created for `target`. Order as
   * Northstar: Future, Expired, then the HMAC. A token of a length other than
   * 40 is rejected by the request decoder before this is reached.
   */
  verify(token: string, user: string, target: string, shared: Buffer, validityMs: number): VerificationResult {
    const bytes = Buffer.from(token, 'base64');
    if (bytes.length !== TOKEN_LENGTH) return 'Invalid';
    const secs = bytes.readBigUInt64BE(0);
    const nowMs = this.elapsedMs();
    const timeMs = Number(secs) * 1000;
    if (nowMs < timeMs) return 'Future';
    if (nowMs - timeMs > validityMs) return 'Expired';
    return timingSafeEqual(bytes.subarray(8), this.mac(secs, user, target, shared)) ? 'Ok' : 'Invalid';
  }
}

/** The process-wide authority (tokens are not valid across a runtime restart). */
export const tokens = new TokenAuthority();
