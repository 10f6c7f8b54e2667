// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * TensorPlacement is the device-mapping hint for one tensor.
 */
export interface TensorPlacementIn {
  /**
   * The item.
   */
  'item'?: (string);
  /**
   * The entry's key.
   */
  'key'?: (string);
  /**
   * Where it was saved.
   */
  'savedDevice'?: (string);
  /**
   * Where the loader should put it.
   */
  'targetDevice'?: (string);
}

/**
 * TensorPlacement is the device-mapping hint for one tensor.
 */
export interface TensorPlacement {
  /**
   * The item.
   */
  'item': (string);
  /**
   * The entry's key.
   */
  'key': (string);
  /**
   * Where it was saved.
   */
  'savedDevice': (string);
  /**
   * Where the loader should put it.
   */
  'targetDevice': (string);
}
