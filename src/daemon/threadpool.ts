/**
 * Sizes libuv's thread pool. It must be the entry point's first import: the pool reads
 * UV_THREADPOOL_SIZE once, when the first fs call or compression starts it.
 *
 * The default of 4 threads is shared by the save path's O_DIRECT writes, its fsyncs
 * (which block a thread for as long as the disk takes), LZ4 compression of compressible
 * chunks and the load path's reads; with several ranks saving at once, four fsyncs would
 * stall every write behind them. A value set by the operator wins.
 */
const DEFAULT_THREADS = 16;

if (!process.env["UV_THREADPOOL_SIZE"]) process.env["UV_THREADPOOL_SIZE"] = String(DEFAULT_THREADS);

export {};
