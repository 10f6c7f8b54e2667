/**
 * The client's evaluation module without a daemon: followCheckpoints' cursor, reconnection
 * and timeout, and the wire conversions of events, reports and retention policies.
 */
import { describe, expect, test } from "vitest";
import { Code, CkptdError } from "../../../clients/ts/src/errors.js";
import {
  eventOf,
  followCheckpoints,
  policyOf,
  policyToWire,
  reportOf,
  type CheckpointEvent,
  type WatchOptions,
} from "../../../clients/ts/src/evaluation.js";

function event(sequence: number, type: CheckpointEvent["type"] = "COMMITTED", step = sequence): CheckpointEvent {
  return {
    sequence,
    type,
    job: "j",
    checkpointId: `global_step${step}`,
    step,
    commitTime: new Date(0),
    eventTime: new Date(0),
    reason: "",
  };
}

/**
 * A scripted daemon: connection i replays `script[i]` — events, then either an error to
 * end with or "hang" (a live stream that waits until it is aborted).
 */
function scriptedWatch(script: Array<{ events: CheckpointEvent[]; end: Error | "hang" }>) {
  const calls: WatchOptions[] = [];
  const watch = (options: WatchOptions): AsyncIterable<CheckpointEvent> => {
    calls.push(options);
    const conn = script[calls.length - 1] ?? { events: [], end: "hang" as const };
    return (async function* () {
      for (const ev of conn.events) yield ev;
      if (conn.end !== "hang") throw conn.end;
      await new Promise<void>((resolve) => {
        if (options.signal?.aborted) return resolve();
        options.signal?.addEventListener("abort", () => resolve(), { once: true });
      });
    })();
  };
  return { watch, calls };
}

const unavailable = () => new CkptdError(Code.UNAVAILABLE, "connection dropped");

async function collect(it: AsyncIterable<CheckpointEvent>, max = 100): Promise<number[]> {
  const seqs: number[] = [];
  for await (const ev of it) {
    seqs.push(ev.sequence);
    if (seqs.length >= max) break;
  }
  return seqs;
}

describe("followCheckpoints", () => {
  test("yields COMMITTED events once, reconnecting after the last sequence seen when the daemon goes away", async () => {
    const { watch, calls } = scriptedWatch([
      { events: [event(1), event(2), event(3, "DELETED", 1)], end: unavailable() },
      { events: [], end: unavailable() },
      // A daemon that (wrongly) repeats an event: the cursor drops it.
      { events: [event(3, "DELETED", 1), event(4), event(5)], end: "hang" },
    ]);
    const seqs = await collect(followCheckpoints(watch, { evaluator: "e", minBackoffMs: 1, maxBackoffMs: 2 }), 4);
    expect(seqs).toEqual([1, 2, 4, 5]);
    expect(calls.map((c) => c.afterSequence)).toEqual([undefined, 3, 3]);
    expect(calls.every((c) => c.evaluator === "e")).toBe(true);
  });

  test("starts after afterSequence, or at fromStep on the first connection only", async () => {
    const a = scriptedWatch([{ events: [event(8), event(9)], end: "hang" }]);
    expect(await collect(followCheckpoints(a.watch, { evaluator: "e", afterSequence: 7 }), 2)).toEqual([8, 9]);
    expect(a.calls[0]?.afterSequence).toBe(7);

    const b = scriptedWatch([
      { events: [event(5, "COMMITTED", 50)], end: unavailable() },
      { events: [event(6, "COMMITTED", 60)], end: "hang" },
    ]);
    expect(await collect(followCheckpoints(b.watch, { evaluator: "e", fromStep: 50, minBackoffMs: 1 }), 2)).toEqual([5, 6]);
    expect(b.calls.map((c) => [c.fromStep, c.afterSequence])).toEqual([
      [50, undefined],
      [undefined, 5],
    ]);
  });

  test("throws errors other than UNAVAILABLE", async () => {
    const { watch } = scriptedWatch([{ events: [event(1)], end: new CkptdError(Code.PERMISSION_DENIED, "no") }]);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const ev of followCheckpoints(watch, { evaluator: "e" })) seen.push(ev.sequence);
      })(),
    ).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    expect(seen).toEqual([1]);
  });

  test("ends after timeoutMs without a new checkpoint, not counting the consumer's time", async () => {
    const { watch } = scriptedWatch([{ events: [event(1), event(2)], end: "hang" }]);
    const started = Date.now();
    const seqs: number[] = [];
    for await (const ev of followCheckpoints(watch, { evaluator: "e", timeoutMs: 150 })) {
      seqs.push(ev.sequence);
      // Longer than the timeout: the consumer's own time does not end the iteration.
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(seqs).toEqual([1, 2]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(540);
  });

  test("keeps reconnecting while the daemon is down, and the timeout still ends it", async () => {
    const { watch, calls } = scriptedWatch(Array.from({ length: 1000 }, () => ({ events: [], end: unavailable() })));
    const started = Date.now();
    expect(await collect(followCheckpoints(watch, { evaluator: "e", timeoutMs: 300, minBackoffMs: 10, maxBackoffMs: 40 }))).toEqual([]);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(calls.length).toBeGreaterThan(3);
  });

  test("an aborted signal ends the iteration without an error", async () => {
    const { watch } = scriptedWatch([{ events: [event(1)], end: "hang" }]);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    expect(await collect(followCheckpoints(watch, { evaluator: "e", signal: abort.signal }))).toEqual([1]);
  });
});

describe("wire conversions", () => {
  test("events: the enum, timestamps as Dates, the commit time of the summary when the event has none", () => {
    const ev = eventOf({
      sequence: 7,
      type: "CHECKPOINT_EVENT_TYPE_DELETED",
      job: "j",
      checkpointId: "global_step5",
      step: 5,
      commitTime: null,
      eventTime: { seconds: 1_700_000_001, nanos: 500_000_000 },
      checkpoint: {
        job: "j",
        checkpointId: "global_step5",
        step: 5,
        worldSize: 1,
        commitTime: { seconds: 1_700_000_000, nanos: 250_000_000 },
        rawBytes: 1,
        storedBytes: 1,
        attempt: 0,
        ranks: [],
      },
      reason: "retention: keep_last=3",
    });
    expect(ev.type).toBe("DELETED");
    expect(ev.commitTime.toISOString()).toBe("2023-11-14T22:13:20.250Z");
    expect(ev.eventTime.getTime()).toBe(1_700_000_001_500);
    expect(ev.reason).toBe("retention: keep_last=3");
    expect(() =>
      eventOf({
        sequence: 1,
        type: "CHECKPOINT_EVENT_TYPE_UNSPECIFIED",
        job: "j",
        checkpointId: "c",
        step: 1,
        commitTime: null,
        eventTime: null,
        checkpoint: null,
        reason: "",
      }),
    ).toThrow(/unknown type/);
  });

  test("reports: status names and metrics", () => {
    const r = reportOf({
      job: "j",
      checkpointId: "c",
      step: 3,
      evaluator: "e",
      metrics: { loss: 0.5 },
      status: "EVALUATION_STATUS_UNSPECIFIED",
      message: "",
      reportTime: { seconds: 10, nanos: 0 },
    });
    expect(r).toMatchObject({ status: "SUCCEEDED", metrics: { loss: 0.5 }, step: 3 });
    expect(r.reportTime.getTime()).toBe(10_000);
  });

  test("retention policies: defaults, modes, and a keep-best without a metric refused before it is sent", () => {
    expect(policyToWire({ keepLast: 3 })).toEqual({
      keepLast: 3,
      keepEverySteps: 0,
      keepBest: 0,
      bestMetric: "",
      bestMode: "METRIC_MODE_UNSPECIFIED",
    });
    expect(policyToWire({ keepBest: 2, bestMetric: "acc", bestMode: "max" }).bestMode).toBe("METRIC_MODE_MAX");
    expect(() => policyToWire({ keepBest: 1 })).toThrow(/bestMetric/);
    expect(() => policyToWire({ keepLast: -1 })).toThrow(/keepLast/);
    expect(policyOf({ keepLast: 0, keepEverySteps: 5, keepBest: 1, bestMetric: "loss", bestMode: "METRIC_MODE_MIN" })).toEqual({
      keepLast: 0,
      keepEverySteps: 5,
      keepBest: 1,
      bestMetric: "loss",
      bestMode: "min",
    });
    expect(policyOf(null)).toEqual({ keepLast: 0, keepEverySteps: 0, keepBest: 0, bestMetric: "", bestMode: undefined });
  });
});
