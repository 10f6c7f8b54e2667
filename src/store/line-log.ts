/**
 * LineLog: one durable, append-only file of newline-terminated records (a job's
 * events.log or evaluations.log). The record format is the caller's (a line codec);
 * what is shared is how the file is read and appended:
 *
 * - an append writes the whole line (looping over short writes) and fsyncs it, or fails
 *   and cuts the file back to the end of the last good record (Storage.append), so
 *   the next append never follows a fragment; appends run one at a time, in call order;
 * - at load, only a bad *tail* (a torn last record) is cut; a bad line with good
 *   records after it is skipped and kept in the file, never truncated away with them.
 */
import type { Logger } from "pino";
import type { Storage } from "./storage.js";

/** A line (without its newline) as a record, or undefined when it is damaged. */
export type DecodeLine<T> = (line: Buffer) => T | undefined;

export interface ScannedLines<T> {
  records: T[];
  /** Offset just past the last intact record: where the next append goes. */
  goodEnd: number;
  /** Damaged lines with intact records after them (skipped, kept in the file). */
  skipped: { offset: number; length: number }[];
}

/**
 * Splits log bytes that start at a record boundary into records. `keep` decides
 * whether an intact record goes into `records` (one it refuses, e.g. a duplicate,
 * stays in the file: it still counts for `goodEnd`). A last line without its newline
 * is torn (or still being written) and is not read.
 */
export function scanLines<T>(buf: Buffer, decode: DecodeLine<T>, keep: (record: T) => boolean = () => true): ScannedLines<T> {
  const records: T[] = [];
  const skipped: { offset: number; length: number }[] = [];
  let pendingBad: { offset: number; length: number }[] = [];
  let goodEnd = 0;
  let at = 0;
  while (at < buf.length) {
    const nl = buf.indexOf(0x0a, at);
    if (nl < 0) break;
    const r = decode(buf.subarray(at, nl));
    if (r !== undefined) {
      if (keep(r)) records.push(r);
      goodEnd = nl + 1;
      skipped.push(...pendingBad);
      pendingBad = [];
    } else pendingBad.push({ offset: at, length: nl + 1 - at });
    at = nl + 1;
  }
  return { records, goodEnd, skipped };
}

export class LineLog {
  /** Appends run one at a time so call order is file order. */
  private chain: Promise<unknown> = Promise.resolve();
  /** End of the last good record, where the next append goes (undefined until read). */
  private size: number | undefined;

  /**
   * `what` names the log in messages ("event log"); `beforeWrite` runs before each
   * append's first write (fault injection).
   */
  constructor(
    private readonly storage: Storage,
    readonly key: string,
    private readonly what: string,
    private readonly beforeWrite?: () => void,
  ) {}

  /** Where the log is, for messages. */
  get file(): string {
    return this.storage.where(this.key);
  }

  get isRead(): boolean {
    return this.size !== undefined;
  }

  /**
   * Reads the whole file (absent: empty), logs damaged lines between good ones, cuts a
   * torn tail and remembers where the next append goes.
   */
  async read<T>(decode: DecodeLine<T>, log: Logger, context: object, keep?: (record: T) => boolean): Promise<T[]> {
    const buf = (await this.storage.get(this.key)) ?? Buffer.alloc(0);
    const scanned = scanLines(buf, decode, keep);
    for (const s of scanned.skipped)
      log.error(
        { ...context, file: this.file, ...s },
        `${this.what} has a damaged record between good ones; it is skipped and kept in the file`,
      );
    if (scanned.goodEnd < buf.length) {
      // Only the tail after the last good record goes: nothing acknowledged lives there.
      log.warn(
        { ...context, file: this.file, droppedBytes: buf.length - scanned.goodEnd },
        `${this.what} ended in a torn record; truncated`,
      );
      await this.storage.truncate(this.key, scanned.goodEnd);
    }
    this.size = scanned.goodEnd;
    return scanned.records;
  }

  /** Runs `step` (which calls `write`) after every earlier step has finished. */
  serial<R>(step: () => Promise<R>): Promise<R> {
    const run = this.chain.then(step);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Appends one whole line durably (inside `serial`); a log not read yet is appended to at its current end. */
  async write(line: Buffer): Promise<void> {
    this.size ??= (await this.storage.stat(this.key).catch(() => undefined))?.size ?? 0;
    this.size = await this.storage.append(this.key, line, this.size, this.beforeWrite);
  }
}
