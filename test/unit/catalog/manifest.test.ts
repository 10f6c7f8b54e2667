import { describe, expect, it } from "vitest";
import { RAW_FRAME_OVERHEAD } from "../../../src/codec/codec.js";
import { parseManifest, validateItemRecord, validateManifest, type ItemRecord, type Manifest } from "../../../src/catalog/manifest.js";

/** An item with a 4-element float32 tensor in one raw chunk and a 5-byte object. */
function item(name = "model"): ItemRecord {
  return {
    name,
    rawBytes: 21,
    storedBytes: 21 + 2 * RAW_FRAME_OVERHEAD,
    entries: [
      {
        key: "w",
        kind: "tensor",
        tensor: { dtype: "DTYPE_FLOAT32", shape: [4], device: "cuda:0", globalShape: [8], globalOffsets: [4] },
        file: "000000.lz4",
        rawBytes: 16,
        storedBytes: 16 + RAW_FRAME_OVERHEAD,
        chunks: [{ offset: 0, rawBytes: 16, storedBytes: 16 + RAW_FRAME_OVERHEAD, crc32c: 0xdeadbeef, raw: true }],
      },
      {
        key: "meta",
        kind: "object",
        object: { sizeBytes: 5, format: "pickle" },
        file: "000001.lz4",
        rawBytes: 5,
        storedBytes: 5 + RAW_FRAME_OVERHEAD,
        chunks: [{ offset: 0, rawBytes: 5, storedBytes: 5 + RAW_FRAME_OVERHEAD, crc32c: 0, raw: true }],
      },
    ],
  };
}

function manifest(): Manifest {
  const i = item();
  return {
    format: "ckptd.manifest",
    version: 1,
    job: "job",
    checkpointId: "step1",
    step: 1,
    worldSize: 2,
    attempt: 1,
    commitTime: "2026-11-30T16:00:00.000Z",
    rawBytes: 2 * i.rawBytes,
    storedBytes: 2 * i.storedBytes,
    ranks: [
      { rank: 0, items: [item()] },
      { rank: 1, items: [item()] },
    ],
  };
}

/** A deep copy of the valid manifest with one change applied. */
function mutated(change: (m: any) => void): unknown {
  const m = structuredClone(manifest()) as any;
  change(m);
  return m;
}

describe("manifest validation", () => {
  it("validateManifest - accepts a complete manifest and returns an equal copy", () => {
    expect(validateManifest(manifest())).toEqual(manifest());
    expect(parseManifest(JSON.stringify(manifest()), "m.json")).toEqual(manifest());
  });

  it("validateItemRecord - small entries may share pack.lz4, back to back in entry order (older manifests with a file per entry stay valid)", () => {
    const packed = structuredClone(item());
    packed.entries[0]!.file = "pack.lz4";
    packed.entries[1]!.file = "pack.lz4";
    packed.entries[1]!.chunks[0]!.offset = 16 + RAW_FRAME_OVERHEAD;
    expect(validateItemRecord(packed)).toEqual(packed);
    expect(validateItemRecord(item()), "a file per entry, as before pack files").toEqual(item());
    // Only the second entry packed: it starts the pack at 0.
    const mixed = structuredClone(item());
    mixed.entries[1]!.file = "pack.lz4";
    expect(validateItemRecord(mixed)).toEqual(mixed);
  });

  it("validateItemRecord - a packed entry must start where the previous packed one ended, and no other file name passes", () => {
    const gap = structuredClone(item());
    gap.entries[0]!.file = "pack.lz4";
    gap.entries[1]!.file = "pack.lz4";
    gap.entries[1]!.chunks[0]!.offset = 0; // overlaps the first entry's frame
    expect(() => validateItemRecord(gap)).toThrow(/entries\[1\]\.chunks\[0\]\.offset/);
    const renamed = structuredClone(item());
    renamed.entries[0]!.file = "../pack.lz4";
    expect(() => validateItemRecord(renamed)).toThrow(/entries\[0\]\.file must be "000000.lz4" or "pack.lz4"/);
  });

  it("parseManifest - truncated JSON is a SyntaxError", () => {
    expect(() => parseManifest(JSON.stringify(manifest()).slice(0, 100), "m.json")).toThrow(SyntaxError);
  });

  it("validateManifest - the issue's manifest ranks:[{items:[{name:'m'}]}] is refused, not crashed on", () => {
    expect(() => validateManifest(mutated((m) => (m.ranks = [{ items: [{ name: "m" }] }])))).toThrow(/rank/);
    expect(() => validateManifest(mutated((m) => (m.ranks = [{ rank: 0, items: [{ name: "m" }] }])))).toThrow(/entries must be a list/);
  });

  const broken: [string, (m: any) => void, RegExp][] = [
    ["null item", (m) => (m.ranks[0].items = [null]), /must be an object/],
    ["null manifest field", (m) => (m.step = null), /step/],
    ["wrong format", (m) => (m.format = "other"), /not a ckptd manifest/],
    ["path-like job", (m) => (m.job = "../../outside"), /job/],
    ["path-like item", (m) => (m.ranks[0].items[0].name = "../m"), /item name/],
    ["path-like entry file", (m) => (m.ranks[0].items[0].entries[0].file = "../../x.lz4"), /file must be/],
    ["world size beyond the bound", (m) => (m.worldSize = 2 ** 32 - 1), /worldSize/],
    ["a rank missing", (m) => m.ranks.pop(), /1 of the 2 ranks/],
    ["a rank twice", (m) => (m.ranks[1].rank = 0), /appears twice/],
    ["a rank outside the world", (m) => (m.ranks[1].rank = 2), /rank/],
    ["an item twice", (m) => m.ranks[0].items.push(m.ranks[0].items[0]), /appears twice/],
    ["item sizes do not add up", (m) => (m.ranks[0].items[0].rawBytes = 22), /sum of its entries/],
    ["manifest sizes do not add up", (m) => (m.storedBytes += 1), /sum of its items/],
    ["entry size not its chunks'", (m) => (m.ranks[0].items[0].entries[0].rawBytes = 17), /rawBytes/],
    ["tensor shape not its bytes", (m) => (m.ranks[0].items[0].entries[0].tensor.shape = [3]), /make 12 bytes/],
    ["object size not its bytes", (m) => (m.ranks[0].items[0].entries[1].object.sizeBytes = 6), /sizeBytes/],
    ["unknown dtype", (m) => (m.ranks[0].items[0].entries[0].tensor.dtype = "constructor"), /dtype/],
    ["shard outside its global tensor", (m) => (m.ranks[0].items[0].entries[0].tensor.globalOffsets = [5]), /outside global/],
    ["unknown kind", (m) => (m.ranks[0].items[0].entries[0].kind = "both"), /kind/],
    ["duplicate key", (m) => (m.ranks[0].items[0].entries[1].key = "w"), /twice/],
    ["chunk offset with a gap", (m) => (m.ranks[0].items[0].entries[0].chunks[0].offset = 1), /offset/],
    ["checksum above 32 bits", (m) => (m.ranks[0].items[0].entries[0].chunks[0].crc32c = 2 ** 32), /crc32c/],
    ["negative checksum", (m) => (m.ranks[0].items[0].entries[0].chunks[0].crc32c = -1), /crc32c/],
    ["fractional checksum", (m) => (m.ranks[0].items[0].entries[0].chunks[0].crc32c = 1.5), /crc32c/],
    ["checksum as a string", (m) => (m.ranks[0].items[0].entries[0].chunks[0].crc32c = "1"), /crc32c/],
    ["raw chunk of the wrong stored size", (m) => (m.ranks[0].items[0].entries[0].chunks[0].storedBytes = 16), /stored raw/],
    ["chunk above one LZ4 block", (m) => (m.ranks[0].items[0].entries[0].chunks[0].rawBytes = 2 ** 23), /rawBytes/],
    ["raw flag missing", (m) => delete m.ranks[0].items[0].entries[0].chunks[0].raw, /raw must be/],
    ["bad commit time", (m) => (m.commitTime = "yesterday"), /commitTime/],
  ];
  for (const [what, change, message] of broken)
    it(`validateManifest - refuses ${what} with INVALID_ARGUMENT naming it`, () => {
      expect(() => validateManifest(mutated(change))).toThrow(message);
      try {
        validateManifest(mutated(change));
      } catch (err) {
        expect((err as { kind?: string }).kind, "INVALID_ARGUMENT").toBe("invalid_argument");
      }
    });

  it("validateItemRecord - a compressed chunk must have saved bytes; a lie about sizes is refused", () => {
    const i = item() as any;
    i.entries[0].chunks[0] = { offset: 0, rawBytes: 16, storedBytes: 17, crc32c: 1, raw: false };
    i.entries[0].storedBytes = 17;
    i.storedBytes = 17 + 5 + RAW_FRAME_OVERHEAD;
    expect(() => validateItemRecord(i)).toThrow(/compressed/);
  });

  it("validateItemRecord - drops fields that are not part of the record", () => {
    const i = { ...item(), extra: "x" } as unknown;
    expect(validateItemRecord(i)).toEqual(item());
  });
});
