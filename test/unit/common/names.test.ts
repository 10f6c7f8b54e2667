import { describe, expect, it } from "vitest";
import { checkKey, checkName, isLatest } from "../../../src/common/names.js";

describe("names", () => {
  it("checkName - accepts ordinary job, checkpoint and item names", () => {
    for (const n of ["twhin-pretrain-2026-11", "global_step1000", "mp_rank_00_model_states.pt", "a"]) expect(checkName("job", n)).toBe(n);
  });

  it("checkName - refuses anything that could escape its directory, naming the field", () => {
    for (const n of ["", ".", "..", "../x", "a/b", "a\\b", "x\u0000y", ".hidden", "-flag", "a".repeat(129), "sp ace"])
      expect(() => checkName("item", n)).toThrow(/item/);
  });

  it("checkKey - allows dotted and slashed keys but not NUL or empty", () => {
    expect(checkKey("layers.0/weight")).toBe("layers.0/weight");
    expect(() => checkKey("")).toThrow(/required/);
    expect(() => checkKey("a\u0000")).toThrow(/NUL/);
  });

  it("isLatest - the empty id and 'latest' name the newest checkpoint", () => {
    expect(isLatest("")).toBe(true);
    expect(isLatest("latest")).toBe(true);
    expect(isLatest("global_step1")).toBe(false);
  });
});
