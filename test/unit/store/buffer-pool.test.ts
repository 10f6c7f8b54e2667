import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AlignedBufferPool, DIRECT_ALIGN, PoolShare } from "../../../src/store/buffer-pool.js";
import { ByteBudget } from "../../../src/common/byte-budget.js";
import { DirectFileWriter, openDirect } from "../../../src/store/direct-io.js";

const KiB = 1024;
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function pool(buffers: number, streamBuffers?: number, jobSharePercent?: number): AlignedBufferPool {
  return new AlignedBufferPool({
    bufferBytes: 64 * KiB,
    budgetBytes: buffers * 64 * KiB,
    ...(streamBuffers !== undefined ? { streamBuffers } : {}),
    ...(jobSharePercent !== undefined ? { jobSharePercent } : {}),
  });
}

/** Settles pending promise callbacks. */
const tick = () => new Promise((r) => setImmediate(r));

describe("AlignedBufferPool shares", () => {
  it("a stream at its share waits for its own buffers while another stream is served first", async () => {
    const p = pool(4, 2);
    const a = p.lease("job-a").shares;
    const b = p.lease("job-b").shares;
    const a1 = await p.acquire(a);
    await p.acquire(a);
    let a3: Buffer | undefined;
    void p.acquire(a).then((buf) => (a3 = buf));
    const b1 = await p.acquire(b); // not behind a's third request, which its share holds back
    expect(b1).toBeDefined();
    await tick();
    expect(a3, "a's third buffer waits for a's own release").toBeUndefined();
    p.release(a1, a);
    await tick();
    expect(a3).toBeDefined();
  });

  it("one job's streams together hold at most its percentage of the pool; other jobs get the rest", async () => {
    const p = pool(8, 8, 50);
    const streams = [p.lease("greedy"), p.lease("greedy"), p.lease("greedy")];
    const got: Buffer[] = [];
    for (const s of streams) for (let i = 0; i < 3; i++) void p.acquire(s.shares).then((b) => got.push(b));
    await tick();
    expect(got, "the greedy job's buffers").toHaveLength(4);
    const other = p.lease("other").shares;
    for (let i = 0; i < 4; i++) await p.acquire(other);
    expect(p.inUse).toBe(8);
  });

  it("a closed lease lets its job's share go once no stream of the job holds one", () => {
    const p = pool(4, 4, 50);
    const l1 = p.lease("j");
    const l2 = p.lease("j");
    expect(l1.shares[1]).toBe(l2.shares[1]);
    l1.close();
    l2.close();
    expect(p.lease("j").shares[1]).not.toBe(l1.shares[1]);
  });

  it("PoolShare is full at its limit", () => {
    const s = new PoolShare(1);
    expect(s.full).toBe(false);
    s.lent++;
    expect(s.full).toBe(true);
  });
});

describe("DirectFileWriter", () => {
  it("holds no pooled buffer between appends, and the file is exactly the bytes appended", async (ctx) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-direct-"));
    dirs.push(dir);
    const file = path.join(dir, "entry.lz4");
    const fh = await openDirect(file);
    if (!fh) return ctx.skip(); // this test needs a filesystem that allows O_DIRECT (tmpfs refuses it)
    const probe = fs.openSync(path.join(dir, "probe"), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT);
    const p = new AlignedBufferPool({ bufferBytes: 64 * KiB, budgetBytes: 256 * KiB, probeFd: probe });
    const w = new DirectFileWriter(fh, p);
    const parts: Buffer[] = [];
    // Odd sizes: tails of every length, frames across buffer boundaries, a part larger than a buffer.
    for (const n of [1, 4095, 4097, 3, 64 * KiB, 100 * KiB + 7, DIRECT_ALIGN, 12_345, 70_000, 5]) {
      const part = randomBytes(n);
      parts.push(part);
      await w.append([part.subarray(0, n >> 1), part.subarray(n >> 1)]);
      // Between appends: writes may still be in flight (longer on a busy machine), but every
      // buffer goes back once they are done; a buffer held while the stream waits never does.
      for (let waited = 0; p.inUse > 0 && waited < 2_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      expect(p.inUse, `pooled buffers held after an append of ${n} bytes`).toBe(0);
    }
    await w.close();
    await fh.close();
    fs.closeSync(probe);
    expect((await fsp.readFile(file)).equals(Buffer.concat(parts))).toBe(true);
  });

  it("keeps its buffer across appends that follow one another, and lets it go once the stream pauses", async (ctx) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-direct-"));
    dirs.push(dir);
    const file = path.join(dir, "pack.lz4");
    const fh = await openDirect(file);
    if (!fh) return ctx.skip(); // this test needs a filesystem that allows O_DIRECT (tmpfs refuses it)
    const probe = fs.openSync(path.join(dir, "probe"), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT);
    const p = new AlignedBufferPool({ bufferBytes: 64 * KiB, budgetBytes: 256 * KiB, probeFd: probe });
    const w = new DirectFileWriter(fh, p);
    const parts: Buffer[] = [];
    for (let round = 0; round < 3; round++) {
      // Back to back, as chunks already received are: one buffer, filled before it is written.
      for (const n of [11, 5000, 30 * KiB + 3, 7]) {
        const part = randomBytes(n + round);
        parts.push(part);
        if (n === 5000) {
          let at = 0;
          await w.appendFrom(part.length, async (buf, offset, length) => {
            await tick(); // a fill that waits (a read) while the writer holds the buffer
            part.copy(buf, offset, at, at + length);
            at += length;
          });
        } else await w.append([part]);
        expect(p.inUse).toBe(1);
      }
      // The stream pauses: the buffer goes back once its writes are done.
      await new Promise((r) => setTimeout(r, 20));
      expect(p.inUse, `pooled buffers held after round ${round}`).toBe(0);
    }
    await w.close();
    await fh.close();
    fs.closeSync(probe);
    expect((await fsp.readFile(file)).equals(Buffer.concat(parts))).toBe(true);
  });
});

describe("ByteBudget", () => {
  it("tryTake counts only what fits; force counts past the limit; give returns it", () => {
    const b = new ByteBudget(10);
    expect(b.tryTake(6)).toBe(true);
    expect(b.tryTake(6)).toBe(false);
    b.force(6);
    expect(b.inUse).toBe(12);
    expect(b.fits(1)).toBe(false);
    b.give(12);
    expect(b.fits(10)).toBe(true);
  });
});
