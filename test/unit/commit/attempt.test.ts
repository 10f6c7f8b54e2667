import { describe, expect, it } from "vitest";
import type { ItemRecord } from "../../../src/catalog/manifest.js";
import { Attempt } from "../../../src/commit/attempt.js";
import { CkptdError } from "../../../src/common/errors.js";

const record = (name: string): ItemRecord => ({ name, rawBytes: 0, storedBytes: 0, entries: [] });

function attempt(): Attempt {
  return new Attempt("j", "c", 2, 7, 2, "jobs/j/staging/c@2", "/data/jobs/j/staging/c@2");
}

function kindOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof CkptdError ? err.kind : "other";
  }
  return undefined;
}

describe("attempt and its save tickets", () => {
  it("attempt - a ticket names its attempt and item, and staging it lets the rank vote for the item and not save it again", () => {
    const a = attempt();
    const t = a.reserve(1, "model");
    expect(t).toMatchObject({ job: "j", checkpointId: "c", attempt: 2, rank: 1, item: "model", stagingKey: "jobs/j/staging/c@2" });
    expect(t.dir).toBe("/data/jobs/j/staging/c@2/rank-00001/model");
    expect(
      kindOf(() => a.reserve(1, "model")),
      "a second stream of the same item",
    ).toBe("already_exists");
    expect(a.savesInProgress).toBe(1);
    t.stage(record("model"));
    expect(a.savesInProgress).toBe(0);
    expect(a.staged.get(1)?.get("model")).toEqual(record("model"));
    expect(
      kindOf(() => a.reserve(1, "model")),
      "an item already staged",
    ).toBe("already_exists");
  });

  it("attempt - a released ticket frees the item for another save; a rank that voted saves no more", () => {
    const a = attempt();
    a.reserve(0, "model").release();
    expect(a.savesInProgress).toBe(0);
    a.reserve(0, "model").stage(record("model"));
    a.recordVote(0, ["model"]);
    expect(kindOf(() => a.reserve(0, "optim"))).toBe("failed_precondition");
  });

  it("attempt - once the decision is being recorded a ticket's stream is stopped with ABORTED, and its checkLive and stage throw ABORTED", () => {
    const a = attempt();
    const t = a.reserve(0, "model");
    const stopped: Error[] = [];
    t.watch((err) => stopped.push(err));
    const unwatched = a.reserve(1, "model");
    unwatched.watch((err) => stopped.push(err))();
    expect(kindOf(() => t.checkLive())).toBeUndefined();
    a.startDeciding("rank 1 aborted");
    expect(a.state).toBe("deciding");
    expect(
      stopped.map((e) => (e as CkptdError).kind),
      "only the stream still watching",
    ).toEqual(["aborted"]);
    expect(stopped[0]!.message).toMatch(/attempt 2 was decided while this item streamed: rank 1 aborted/);
    expect(kindOf(() => t.checkLive())).toBe("aborted");
    expect(kindOf(() => t.stage(record("model")))).toBe("aborted");
    const late: Error[] = [];
    t.watch((err) => late.push(err));
    expect(late, "a stream watching a decided attempt is stopped at once").toHaveLength(1);
  });

  it("attempt - settle answers every waiter; a failed decision rejects them with its error", async () => {
    const a = attempt();
    const waiting = a.decided();
    a.settle({ outcome: "ABORTED", reason: "timeout", attempt: 2 });
    await expect(waiting).resolves.toMatchObject({ outcome: "ABORTED", reason: "timeout" });
    expect(a.decision?.outcome).toBe("ABORTED");
    const b = attempt();
    const failing = b.decided();
    b.fail(new Error("disk full"));
    await expect(failing).rejects.toThrow("disk full");
    expect(b.state).toBe("decided");
  });
});
