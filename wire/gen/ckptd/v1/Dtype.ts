// Original file: proto/ckptd/v1/checkpoint_service.proto

/**
 * Dtype is the element type of a tensor.
 */
export const Dtype = {
  /**
   * Not set: rejected.
   */
  DTYPE_UNSPECIFIED: 'DTYPE_UNSPECIFIED',
  /**
   * 32-bit IEEE float (torch.float32).
   */
  DTYPE_FLOAT32: 'DTYPE_FLOAT32',
  /**
   * 64-bit IEEE float (torch.float64).
   */
  DTYPE_FLOAT64: 'DTYPE_FLOAT64',
  /**
   * 16-bit IEEE float (torch.float16).
   */
  DTYPE_FLOAT16: 'DTYPE_FLOAT16',
  /**
   * 16-bit brain float (torch.bfloat16).
   */
  DTYPE_BFLOAT16: 'DTYPE_BFLOAT16',
  /**
   * Signed 8-bit integer.
   */
  DTYPE_INT8: 'DTYPE_INT8',
  /**
   * Signed 16-bit integer.
   */
  DTYPE_INT16: 'DTYPE_INT16',
  /**
   * Signed 32-bit integer.
   */
  DTYPE_INT32: 'DTYPE_INT32',
  /**
   * Signed 64-bit integer.
   */
  DTYPE_INT64: 'DTYPE_INT64',
  /**
   * Unsigned 8-bit integer.
   */
  DTYPE_UINT8: 'DTYPE_UINT8',
  /**
   * Unsigned 16-bit integer.
   */
  DTYPE_UINT16: 'DTYPE_UINT16',
  /**
   * Unsigned 32-bit integer.
   */
  DTYPE_UINT32: 'DTYPE_UINT32',
  /**
   * Unsigned 64-bit integer.
   */
  DTYPE_UINT64: 'DTYPE_UINT64',
  /**
   * Boolean, one byte per element.
   */
  DTYPE_BOOL: 'DTYPE_BOOL',
  /**
   * Complex of two float32.
   */
  DTYPE_COMPLEX64: 'DTYPE_COMPLEX64',
  /**
   * Complex of two float64.
   */
  DTYPE_COMPLEX128: 'DTYPE_COMPLEX128',
  /**
   * 8-bit float, 4 exponent and 3 mantissa bits (torch.float8_e4m3fn).
   */
  DTYPE_FLOAT8_E4M3FN: 'DTYPE_FLOAT8_E4M3FN',
  /**
   * 8-bit float, 5 exponent and 2 mantissa bits (torch.float8_e5m2).
   */
  DTYPE_FLOAT8_E5M2: 'DTYPE_FLOAT8_E5M2',
} as const;

/**
 * Dtype is the element type of a tensor.
 */
export type DtypeIn =
  /**
   * Not set: rejected.
   */
  | 'DTYPE_UNSPECIFIED'
  | 0
  /**
   * 32-bit IEEE float (torch.float32).
   */
  | 'DTYPE_FLOAT32'
  | 1
  /**
   * 64-bit IEEE float (torch.float64).
   */
  | 'DTYPE_FLOAT64'
  | 2
  /**
   * 16-bit IEEE float (torch.float16).
   */
  | 'DTYPE_FLOAT16'
  | 3
  /**
   * 16-bit brain float (torch.bfloat16).
   */
  | 'DTYPE_BFLOAT16'
  | 4
  /**
   * Signed 8-bit integer.
   */
  | 'DTYPE_INT8'
  | 5
  /**
   * Signed 16-bit integer.
   */
  | 'DTYPE_INT16'
  | 6
  /**
   * Signed 32-bit integer.
   */
  | 'DTYPE_INT32'
  | 7
  /**
   * Signed 64-bit integer.
   */
  | 'DTYPE_INT64'
  | 8
  /**
   * Unsigned 8-bit integer.
   */
  | 'DTYPE_UINT8'
  | 9
  /**
   * Unsigned 16-bit integer.
   */
  | 'DTYPE_UINT16'
  | 10
  /**
   * Unsigned 32-bit integer.
   */
  | 'DTYPE_UINT32'
  | 11
  /**
   * Unsigned 64-bit integer.
   */
  | 'DTYPE_UINT64'
  | 12
  /**
   * Boolean, one byte per element.
   */
  | 'DTYPE_BOOL'
  | 13
  /**
   * Complex of two float32.
   */
  | 'DTYPE_COMPLEX64'
  | 14
  /**
   * Complex of two float64.
   */
  | 'DTYPE_COMPLEX128'
  | 15
  /**
   * 8-bit float, 4 exponent and 3 mantissa bits (torch.float8_e4m3fn).
   */
  | 'DTYPE_FLOAT8_E4M3FN'
  | 16
  /**
   * 8-bit float, 5 exponent and 2 mantissa bits (torch.float8_e5m2).
   */
  | 'DTYPE_FLOAT8_E5M2'
  | 17

/**
 * Dtype is the element type of a tensor.
 */
export type Dtype = typeof Dtype[keyof typeof Dtype]
