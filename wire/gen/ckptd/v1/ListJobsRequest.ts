// Original file: proto/ckptd/v1/admin_service.proto


/**
 * ListJobsRequest is empty.
 */
export interface ListJobsRequestIn {
}

/**
 * ListJobsRequest is empty.
 */
export interface ListJobsRequest {
}
