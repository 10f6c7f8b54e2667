import { randomBytes } from "node:crypto";
import { crc32c } from "@node-rs/crc32";
import { describe, expect, it } from "vitest";
import { crc32cCombine } from "../../../src/codec/codec.js";

describe("crc32cCombine", () => {
  it("gives the CRC-32C of the concatenation, for every split and length", () => {
    for (const [la, lb] of [
      [0, 5],
      [5, 0],
      [1, 1],
      [3, 4096],
      [4096, 3],
      [1 << 20, (4 << 20) + 7],
      [17, 1 << 22],
    ] as const) {
      const a = randomBytes(la);
      const b = randomBytes(lb);
      expect(crc32cCombine(crc32c(a), crc32c(b), lb)).toBe(crc32c(Buffer.concat([a, b])));
    }
  });

  it("agrees with a running CRC over many chunks (the Save trailer's checksum)", () => {
    const chunks = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 37));
    let running = 0;
    let combined = 0;
    for (const c of chunks) {
      running = crc32c(c, running);
      combined = crc32cCombine(combined, crc32c(c), c.length);
    }
    expect(combined).toBe(running);
  });
});
