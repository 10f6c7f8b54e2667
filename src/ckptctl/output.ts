/**
 * Output for people (tables, human sizes) and for scripts (one JSON document, with
 * timestamps as RFC 3339 strings as in the proto3 JSON mapping).
 */
import Table from "cli-table3";
import { fromProtoDtype, type Checkpoint, type Timestamp } from "@ckptd/client";

/** Writes a line to stdout. */
export function print(line = ""): void {
  process.stdout.write(line + "\n");
}

/** Writes one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** A table with a header row, borders kept light for a terminal. */
export function table(head: string[], rows: (string | number)[][], alignRight: number[] = []): string {
  const t = new Table({
    head,
    style: { head: [], border: [], compact: true },
    colAligns: head.map((_, i) => (alignRight.includes(i) ? "right" : "left")),
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

/** A two-column table of names and values. */
export function keyValueTable(rows: [string, string | number][]): string {
  const t = new Table({ style: { head: [], border: [], compact: true } });
  for (const [k, v] of rows) t.push({ [k]: String(v) });
  return t.toString();
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

/** Raw over stored bytes, e.g. "3.20x"; "-" when nothing is stored. */
export function ratio(raw: number, stored: number): string {
  return stored > 0 ? `${(raw / stored).toFixed(2)}x` : "-";
}

/** A protobuf Timestamp as an RFC 3339 string; empty when unset. */
export function isoTime(t: Timestamp | null | undefined): string {
  if (!t) return "";
  const ms = Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
  return new Date(ms).toISOString();
}

/** A dtype as torch names it ("bfloat16"), falling back to the wire name. */
export function dtypeName(dtype: string): string {
  return fromProtoDtype(dtype) ?? dtype;
}

/** "[1024, 4096]"; "[]" for a scalar. */
export function shape(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** A checkpoint as scripts get it: the wire object with timestamps as strings. */
export function checkpointJson(c: Checkpoint): Record<string, unknown> {
  return {
    ...c,
    commitTime: isoTime(c.commitTime),
    ranks: c.ranks.map((r) => ({
      rank: r.rank,
      items: r.items.map((it) => ({
        name: it.name,
        rawBytes: it.rawBytes,
        storedBytes: it.storedBytes,
        entryCount: it.entryCount,
        entries: it.entries.map((e) => {
          const entry: Record<string, unknown> = { key: e.key, kind: e.kind ?? "" };
          if (e.tensor) {
            entry.tensor = {
              dtype: dtypeName(e.tensor.dtype),
              shape: e.tensor.shape,
              device: e.tensor.device,
              globalShape: e.tensor.globalShape,
              globalOffsets: e.tensor.globalOffsets,
            };
          }
          if (e.object) entry.object = { sizeBytes: e.object.sizeBytes, format: e.object.format };
          entry.rawBytes = e.rawBytes;
          entry.storedBytes = e.storedBytes;
          entry.chunkCount = e.chunkCount;
          return entry;
        }),
      })),
    })),
  };
}
