/**
 * The staged-item record as it crosses between nodes: a participant sends it (stagedItem)
 * and the coordinator takes it back as a validated domain record (itemRecordOf).
 */
import type { Dtype } from "../../wire/gen/ckptd/v1/Dtype.js";
import type { StagedItem, StagedItemIn } from "../../wire/gen/ckptd/v1/StagedItem.js";
import { validateItemRecord, type ItemRecord } from "../catalog/manifest.js";

/** A record of a staged item as a participant sends it. */
export function stagedItem(r: ItemRecord): StagedItemIn {
  return {
    name: r.name,
    rawBytes: r.rawBytes,
    storedBytes: r.storedBytes,
    entries: r.entries.map((e) => ({
      key: e.key,
      ...(e.tensor ? { tensor: { ...e.tensor, dtype: e.tensor.dtype as Dtype } } : {}),
      ...(e.object ? { object: e.object } : {}),
      file: e.file,
      rawBytes: e.rawBytes,
      storedBytes: e.storedBytes,
      chunks: e.chunks,
    })),
  };
}

/**
 * A participant's record of a staged item, translated and validated in full
 * (validateItemRecord): only the fields of the domain record, copied one by one, so no
 * wire default or unset oneof member can pass for a value.
 */
export function itemRecordOf(s: StagedItem, where: string): ItemRecord {
  return validateItemRecord(
    {
      name: s.name,
      rawBytes: s.rawBytes,
      storedBytes: s.storedBytes,
      entries: s.entries.map((e) => ({
        key: e.key,
        kind: e.kind,
        ...(e.kind === "tensor" && e.tensor
          ? {
              tensor: {
                dtype: e.tensor.dtype,
                shape: e.tensor.shape,
                device: e.tensor.device,
                globalShape: e.tensor.globalShape,
                globalOffsets: e.tensor.globalOffsets,
              },
            }
          : {}),
        ...(e.kind === "object" && e.object ? { object: { sizeBytes: e.object.sizeBytes, format: e.object.format } } : {}),
        file: e.file,
        rawBytes: e.rawBytes,
        storedBytes: e.storedBytes,
        chunks: e.chunks.map((c) => ({ offset: c.offset, rawBytes: c.rawBytes, storedBytes: c.storedBytes, crc32c: c.crc32c, raw: c.raw })),
      })),
    },
    where,
  );
}
