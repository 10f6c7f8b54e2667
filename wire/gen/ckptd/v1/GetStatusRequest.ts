// Original file: proto/ckptd/v1/admin_service.proto


/**
 * GetStatusRequest is empty.
 */
export interface GetStatusRequestIn {
}

/**
 * GetStatusRequest is empty.
 */
export interface GetStatusRequest {
}
