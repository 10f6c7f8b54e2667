/**
 * Tensors as the client sees them: a dtype, a shape and the raw little-endian bytes,
 * with the device the tensor lives on. No arithmetic: this is the unit a checkpoint
 * moves, not a numerics library.
 */
import * as os from "node:os";
import { Code, CkptdError } from "./errors.js";
import type { Dtype } from "../../../wire/gen/ckptd/v1/Dtype.js";
import { DTYPE_SIZES, tensorByteSize } from "../../../wire/index.js";

/** Element type names, as in `torch.<name>`. */
export type DtypeName =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "bool"
  | "complex64"
  | "complex128"
  | "float8_e4m3fn"
  | "float8_e5m2";

const NAME_TO_PROTO: Readonly<Record<DtypeName, Exclude<Dtype, "DTYPE_UNSPECIFIED">>> = {
  float32: "DTYPE_FLOAT32",
  float64: "DTYPE_FLOAT64",
  float16: "DTYPE_FLOAT16",
  bfloat16: "DTYPE_BFLOAT16",
  int8: "DTYPE_INT8",
  int16: "DTYPE_INT16",
  int32: "DTYPE_INT32",
  int64: "DTYPE_INT64",
  uint8: "DTYPE_UINT8",
  uint16: "DTYPE_UINT16",
  uint32: "DTYPE_UINT32",
  uint64: "DTYPE_UINT64",
  bool: "DTYPE_BOOL",
  complex64: "DTYPE_COMPLEX64",
  complex128: "DTYPE_COMPLEX128",
  float8_e4m3fn: "DTYPE_FLOAT8_E4M3FN",
  float8_e5m2: "DTYPE_FLOAT8_E5M2",
};

const PROTO_TO_NAME: ReadonlyMap<string, DtypeName> = new Map(
  (Object.entries(NAME_TO_PROTO) as [DtypeName, Dtype][]).map(([name, proto]) => [proto, name]),
);

/** Every dtype name. */
export const DTYPE_NAMES: readonly DtypeName[] = Object.keys(NAME_TO_PROTO) as DtypeName[];

/** True when `name` is a known dtype name. */
export function isDtypeName(name: unknown): name is DtypeName {
  return typeof name === "string" && Object.prototype.hasOwnProperty.call(NAME_TO_PROTO, name);
}

/** The wire enum value of a dtype name, e.g. `float32` → `DTYPE_FLOAT32`. */
export function toProtoDtype(name: DtypeName): Dtype {
  return NAME_TO_PROTO[name];
}

/** The dtype name of a wire enum value, or undefined for `DTYPE_UNSPECIFIED` and unknown values. */
export function fromProtoDtype(dtype: Dtype | string): DtypeName | undefined {
  return PROTO_TO_NAME.get(dtype);
}

/** Bytes per element of a dtype. */
export function dtypeByteSize(name: DtypeName): number {
  return DTYPE_SIZES[NAME_TO_PROTO[name]];
}

/**
 * A tensor: `data` holds the raw little-endian bytes in row-major (C-contiguous) order;
 * its length is the element size times the product of `shape`.
 */
export interface Tensor {
  /** Element type. */
  readonly dtype: DtypeName;
  /** Shape; `[]` for a 0-d (scalar) tensor, a 0 anywhere for an empty one. */
  readonly shape: readonly number[];
  /** The raw bytes. On save these are sent as views, so do not modify them until the save has resolved. */
  readonly data: Uint8Array;
  /**
   * The device: on save, where the tensor lives (e.g. `cuda:3`, `cpu`), recorded in the
   * checkpoint; on load, where the loader should put it (the daemon's hint).
   */
  readonly device: string;
  /** For a shard of a larger tensor: the global tensor's shape. */
  readonly globalShape?: readonly number[];
  /** For a shard: its offset in each dimension of the global tensor. */
  readonly globalOffsets?: readonly number[];
}

/** Array types {@link tensor} accepts; the dtype is inferred from the array's type. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint8ClampedArray
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** Options of {@link tensor}. */
export interface TensorOptions {
  /**
   * Element type. Required for dtypes without a JS array type (`bfloat16`, `float16`:
   * pass a `Uint16Array` or bytes; `bool`, `float8_*`: bytes; `complex*`: the float array).
   * When it differs from the array's type, the bytes are reinterpreted, never converted.
   * @default inferred from the array type
   */
  dtype?: DtypeName;
  /** @default one dimension, `[number of elements]` */
  shape?: readonly number[];
  /** @default "cpu" */
  device?: string;
  /** For a shard of a larger tensor: the global shape. */
  globalShape?: readonly number[];
  /** For a shard: its offsets in the global tensor. */
  globalOffsets?: readonly number[];
}

function inferDtype(data: TensorData): DtypeName {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Uint16Array) return "uint16";
  if (data instanceof Uint32Array) return "uint32";
  if (data instanceof BigUint64Array) return "uint64";
  return "uint8";
}

// Typed arrays use the host's byte order, while the wire format is little-endian.
const HOST_IS_LITTLE_ENDIAN = os.endianness() === "LE";

/**
 * Makes a {@link Tensor} from a typed array or raw bytes, viewing the array's memory
 * (no copy). Throws `INVALID_ARGUMENT` when the byte length does not match dtype and shape.
 *
 * @example
 * tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2], device: "cuda:0" })
 * tensor(bf16Bits, { dtype: "bfloat16", shape: [1024] }) // bf16Bits: Uint16Array
 */
export function tensor(data: TensorData, options: TensorOptions = {}): Tensor {
  const dtype = options.dtype ?? inferDtype(data);
  if (!isDtypeName(dtype)) throw invalid(`unknown dtype ${String(dtype)}`);
  if (!HOST_IS_LITTLE_ENDIAN && data.BYTES_PER_ELEMENT > 1) {
    throw invalid("typed arrays on a big-endian host are not little-endian; pass the bytes already in little-endian order");
  }
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const elementSize = dtypeByteSize(dtype);
  let shape = options.shape ? [...options.shape] : undefined;
  if (!shape) {
    if (bytes.byteLength % elementSize !== 0) {
      throw invalid(`${bytes.byteLength} bytes are not a whole number of ${dtype} elements (${elementSize} bytes each)`);
    }
    shape = [bytes.byteLength / elementSize];
  }
  const size = tensorByteSize(elementSize, shape);
  if (typeof size === "string") throw invalid(`bad shape: ${size}`);
  if (size !== bytes.byteLength) {
    throw invalid(`a ${dtype} tensor of shape [${shape.join(", ")}] has ${size} bytes, but the data has ${bytes.byteLength}`);
  }
  const t: { -readonly [K in keyof Tensor]: Tensor[K] } = { dtype, shape, data: bytes, device: options.device ?? "cpu" };
  if (options.globalShape) t.globalShape = [...options.globalShape];
  if (options.globalOffsets) t.globalOffsets = [...options.globalOffsets];
  return t;
}

/** True when `value` has the shape of a {@link Tensor}. */
export function isTensor(value: unknown): value is Tensor {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<Record<keyof Tensor, unknown>>;
  return isDtypeName(v.dtype) && Array.isArray(v.shape) && v.data instanceof Uint8Array && typeof v.device === "string";
}

/** Number of elements of a shape (1 for a 0-d tensor). */
export function numel(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** A typed array over a tensor's elements. */
export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/**
 * A typed array over a tensor's elements: `float16`/`bfloat16` as `Uint16Array` bits,
 * `bool`/`float8_*` as `Uint8Array`, `complex*` as interleaved (re, im) floats. A view
 * when the bytes are suitably aligned (loaded tensors always are), else a copy.
 */
export function tensorArray(t: Tensor): TensorArray {
  const ctor = arrayType(t.dtype);
  let bytes = t.data;
  if (bytes.byteOffset % ctor.BYTES_PER_ELEMENT !== 0) bytes = bytes.slice();
  return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / ctor.BYTES_PER_ELEMENT);
}

type ArrayCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TensorArray;

function arrayType(dtype: DtypeName): ArrayCtor & { BYTES_PER_ELEMENT: number } {
  switch (dtype) {
    case "float32":
    case "complex64":
      return Float32Array;
    case "float64":
    case "complex128":
      return Float64Array;
    case "int8":
      return Int8Array;
    case "int16":
      return Int16Array;
    case "int32":
      return Int32Array;
    case "int64":
      return BigInt64Array;
    case "uint16":
    case "float16":
    case "bfloat16":
      return Uint16Array;
    case "uint32":
      return Uint32Array;
    case "uint64":
      return BigUint64Array;
    case "uint8":
    case "bool":
    case "float8_e4m3fn":
    case "float8_e5m2":
      return Uint8Array;
  }
}

function invalid(message: string): CkptdError {
  return new CkptdError(Code.INVALID_ARGUMENT, message);
}
