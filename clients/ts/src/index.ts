/**
 * The TypeScript client of ckptd, the per-node checkpoint daemon.
 *
 * - {@link CkptdClient}: one method per CheckpointService RPC (save, commit, abort,
 *   getCheckpoint, listCheckpoints, deleteCheckpoint, load) plus loadItems and loadInto
 *   (boxes of global tensors, resharded on load, into the caller's typed arrays); per
 *   EvaluationService RPC (watch, reportEvaluation, waitForEvaluators) plus checkpoints,
 *   which follows a job's commits across reconnections; per RetentionService RPC
 *   (setRetentionPolicy, getRetentionPolicy, pinCheckpoint).
 * - {@link CheckpointEngine}: DeepSpeed's CheckpointEngine (create, save, commit, load)
 *   over nested state dicts.
 * - {@link tensor}: wraps typed arrays as tensors without copying.
 * - {@link CkptdError} and the `is…` helpers: every failure carries a gRPC status.
 *
 * @example
 * const engine = new CheckpointEngine({ address: "127.0.0.1:7070", job: "pretrain", rank, worldSize: 8, devices: ["cuda:0"] });
 * engine.create("global_step1000");
 * await engine.save({ layer: { weight: tensor(w, { shape: [1024, 1024], device: "cuda:0" }) } }, "/ckpt/global_step1000/model");
 * await engine.commit("global_step1000");
 * const state = await engine.load("global_step1000/model");
 *
 * @example
 * // An evaluator that follows the trainer live, and the trainer waiting for it.
 * for await (const ev of client.checkpoints("pretrain", { evaluator: "eval-holdout" })) {
 *   await client.reportEvaluation({ job: "pretrain", checkpointId: ev.checkpointId, evaluator: "eval-holdout", metrics: { loss } });
 * }
 * const [report] = await client.waitForEvaluators({ job: "pretrain", checkpointId: "global_step1000", evaluators: ["eval-holdout"], timeoutMs: 600_000 });
 */
export {
  CkptdClient,
  processIncarnation,
  type AbortRequest,
  type CheckpointPage,
  type CkptdClientOptions,
  type CommitRequest,
  type CommitResult,
  type LoadedEntry,
  type LoadedItems,
  type LoadEvent,
  type LoadIntoRequest,
  type LoadIntoResult,
  type LoadRequest,
  type LoadTarget,
  type ShardAs,
  type TensorBox,
  type ObjectValue,
  type Outcome,
  type SaveEntry,
  type SaveRequest,
  type PendingSave,
  type SaveCallOptions,
  type SaveResult,
  type StreamCallOptions,
  type UnaryCallOptions,
} from "./client.js";
export {
  CheckpointEngine,
  flattenStateDict,
  parseLoadPath,
  stepOfTag,
  type CheckpointEngineOptions,
  type JsonValue,
  type StateDict,
  type StateValue,
} from "./engine.js";
export {
  type CheckpointEvent,
  type CheckpointEventType,
  type CheckpointsOptions,
  type EvaluationReport,
  type EvaluationStatus,
  type MetricModeName,
  type ReportEvaluationRequest,
  type ResolvedRetentionPolicy,
  type RetentionPolicy,
  type WaitForEvaluatorsRequest,
  type WatchOptions,
  type WatchStart,
} from "./evaluation.js";
export {
  CheckpointAbortedError,
  CkptdError,
  Code,
  codeName,
  isAlreadyExists,
  isDataLoss,
  isDeadlineExceeded,
  isFailedPrecondition,
  isInvalidArgument,
  isNotFound,
  isUnavailable,
  type CkptdErrorOptions,
} from "./errors.js";
export {
  DTYPE_NAMES,
  dtypeByteSize,
  fromProtoDtype,
  isDtypeName,
  isTensor,
  numel,
  tensor,
  tensorArray,
  toProtoDtype,
  type DtypeName,
  type Tensor,
  type TensorArray,
  type TensorData,
  type TensorOptions,
} from "./tensor.js";
export { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "../../../wire/index.js";
export { DEFAULT_SHARED_MEMORY_DIR } from "./shared-memory.js";
export type { Checkpoint } from "../../../wire/gen/ckptd/v1/Checkpoint.js";
export type { EntryManifest } from "../../../wire/gen/ckptd/v1/EntryManifest.js";
export type { ItemManifest } from "../../../wire/gen/ckptd/v1/ItemManifest.js";
export type { LoadEntry } from "../../../wire/gen/ckptd/v1/LoadEntry.js";
export type { LoadPlan } from "../../../wire/gen/ckptd/v1/LoadPlan.js";
export type { ObjectSpec } from "../../../wire/gen/ckptd/v1/ObjectSpec.js";
export type { RankManifest } from "../../../wire/gen/ckptd/v1/RankManifest.js";
export type { TensorPlacement } from "../../../wire/gen/ckptd/v1/TensorPlacement.js";
export type { TensorSpec } from "../../../wire/gen/ckptd/v1/TensorSpec.js";
export type { Timestamp } from "../../../wire/gen/google/protobuf/Timestamp.js";
export { bearerInterceptor } from "./bearer.js";
