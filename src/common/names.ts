/**
 * Validation of the names that become path components on disk (job, checkpoint
 * id, item). Anything that could escape its directory is refused up front.
 */
import { invalidArgument } from "./errors.js";

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 128;

/** Throws INVALID_ARGUMENT unless `value` is a safe single path component. */
export function checkName(field: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0) throw invalidArgument(`${field} is required`);
  if (value.length > MAX_NAME_LENGTH)
    throw invalidArgument(`${field} is ${value.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`);
  if (!NAME_RE.test(value))
    throw invalidArgument(
      `${field} ${JSON.stringify(value)} is not a valid name: use letters, digits, '.', '_' and '-', not starting with '.' or '-'`,
    );
  return value;
}

/** Entry keys are not path components but still must be printable and bounded. */
export function checkKey(value: unknown): string {
  if (typeof value !== "string" || value.length === 0) throw invalidArgument("entry key is required");
  if (value.length > 4096) throw invalidArgument(`entry key is ${value.length} characters long; at most 4096 are allowed`);
  if (value.includes("\u0000")) throw invalidArgument(`entry key ${JSON.stringify(value)} contains a NUL character`);
  return value;
}

/** The largest world_size any checkpoint may have (the ceiling of --max-world-size; manifests are checked against it). */
export const MAX_WORLD_SIZE = 2 ** 24;

/** Throws INVALID_ARGUMENT unless `value` is an integer in [min, max] (both safe integers). */
export function checkInt(field: string, value: unknown, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max)
    throw invalidArgument(`${field} must be an integer in [${min}, ${max}], got ${truncated(value)}`);
  return value;
}

/** A value for an error message, cut short so a huge field cannot bloat the status. */
export function truncated(value: unknown, max = 64): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
  } catch {
    text = typeof value;
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/** "latest" and the empty string both name the newest committed checkpoint. */
export function isLatest(checkpointId: string): boolean {
  return checkpointId === "" || checkpointId === "latest";
}
