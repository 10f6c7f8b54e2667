// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * ObjectSpec describes an opaque value serialised by the client (e.g. pickled).
 */
export interface ObjectSpecIn {
  /**
   * Byte size of the serialised value.
   */
  'sizeBytes'?: (number | string | Long);
  /**
   * How the client serialised it, e.g. "pickle" or "json"; informational.
   */
  'format'?: (string);
}

/**
 * ObjectSpec describes an opaque value serialised by the client (e.g. pickled).
 */
export interface ObjectSpec {
  /**
   * Byte size of the serialised value.
   */
  'sizeBytes': (number);
  /**
   * How the client serialised it, e.g. "pickle" or "json"; informational.
   */
  'format': (string);
}
