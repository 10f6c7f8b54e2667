// Drives the TypeScript client for the Python interoperability tests.
//
//   node ts_interop.mjs save ADDRESS JOB TAG ITEM   saves a fixed state dict (rank 0 of 1) and commits
//   node ts_interop.mjs load ADDRESS JOB TAG ITEM   loads the item of rank 0
//
// Both print one JSON line: per entry key, its kind, dtype, shape, devices, byte size and
// the SHA-256 of its raw bytes (objects: format and SHA-256), so the Python side can
// compare bit for bit. Needs `npm run build` (imports dist/clients/ts/src/index.js).
import { createHash } from "node:crypto";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const index = path.resolve(here, "../../../dist/clients/ts/src/index.js");
const { CheckpointEngine, CkptdClient, tensor } = await import(pathToFileURL(index).href);

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** The state dict the TypeScript side saves; clients/python/tests/test_interop.py rebuilds the same values. */
function fixedState() {
  const f32 = new Float32Array(3000);
  for (let i = 0; i < f32.length; i++) f32[i] = i * 0.25 - 100;
  const bf16 = new Uint16Array(1024);
  for (let i = 0; i < bf16.length; i++) bf16[i] = (0x3f80 + i * 7) & 0xffff; // bfloat16 bit patterns
  const i64 = new BigInt64Array(257);
  for (let i = 0; i < i64.length; i++) i64[i] = BigInt(i) * 1099511627776n - 5n;
  const u8 = new Uint8Array(300);
  for (let i = 0; i < u8.length; i++) u8[i] = (i * 13) & 0xff;
  const c64 = new Float32Array([1, -1, 2.5, 0.5, -3, 4]); // three complex64 values
  return {
    layers: {
      0: { weight: tensor(f32, { shape: [60, 50], device: "cuda:2" }), bias: tensor(u8, { shape: [300], dtype: "uint8" }) },
    },
    embedding: tensor(bf16, { dtype: "bfloat16", shape: [32, 32] }),
    counter: tensor(i64),
    scalar: tensor(new Float64Array([6.25]), { shape: [] }),
    complex: tensor(c64, { dtype: "complex64", shape: [3] }),
    hyper: { lr: 0.125, name: "ts", betas: [0.9, 0.999] },
  };
}

function describeTensor(t, savedDevice) {
  return { kind: "tensor", dtype: t.dtype, shape: [...t.shape], savedDevice, device: t.device, bytes: t.data.byteLength, sha256: sha256(t.data) };
}

const [cmd, address, job, tag, item] = process.argv.slice(2);
if (!["save", "load"].includes(cmd) || !item) {
  console.error("usage: node ts_interop.mjs save|load ADDRESS JOB TAG ITEM");
  process.exit(2);
}

if (cmd === "save") {
  const engine = new CheckpointEngine({ address, job, rank: 0, worldSize: 1 });
  const state = fixedState();
  engine.create(tag);
  await engine.save(state, `/checkpoints/${tag}/${item}`);
  await engine.commit(tag);
  engine.close();
  const out = {};
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      if (v && v.data instanceof Uint8Array) out[prefix + k] = describeTensor(v, v.device);
      else if (v && typeof v === "object" && !Array.isArray(v)) walk(v, `${prefix}${k}/`);
      else out[prefix + k] = { kind: "json", value: v };
    }
  };
  walk(state, "");
  console.log(JSON.stringify(out));
} else {
  const client = new CkptdClient(address);
  const { plan, items } = await client.loadItems({ job, checkpointId: tag, rank: 0, items: [item] });
  client.close();
  const out = {};
  for (const [key, entry] of items.get(item) ?? new Map()) {
    out[key] =
      entry.kind === "tensor"
        ? describeTensor(entry.tensor, entry.savedDevice)
        : { kind: "object", format: entry.format, bytes: entry.data.byteLength, sha256: sha256(entry.data) };
  }
  console.log(JSON.stringify({ checkpointId: plan.checkpoint?.checkpointId, step: plan.checkpoint?.step, entries: out }));
}
