// The worker pool: every product and every logit is the same bits at 1, 2 and 3 threads (rows are split, never a
// row's reduction), for each weight dtype the pool runs. A library user can stop a model's workers, and a process
// that used them exits by itself.
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Worker } from "node:worker_threads";
import fc from "fast-check";
import { afterAll, expect, test } from "vitest";
import { haveAssets, shared } from "./assets";
import { randomTensor } from "../bench/random-model";
import { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { matvec, POOL_MIN_MACS } from "../engine/ops/matvec";
import type { DType } from "../engine/dtype";
import { quantize } from "../engine/quant";
import type { LlamaConfig } from "../models/config";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { buildModel, openCheckpoint } from "../models/load";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-threads-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("matvec through the pool equals the single-threaded kernel bit for bit (all dtypes)", () => {
  const engine = Engine.create(48 << 20);
  engine.reserveScratch(64 << 10);
  fc.assert(
    // Rows from the pool's threshold up (smaller products run on the calling thread alone), any remainder mod 12.
    fc.property(fc.integer({ min: 4, max: 12 }).map((b) => b * 32).chain((n) =>
      fc.tuple(fc.integer({ min: Math.ceil(POOL_MIN_MACS / n), max: Math.ceil(POOL_MIN_MACS / n) + 300 }), fc.constant(n))),
      fc.constantFrom("f32", "f16", "bf16", "q8_0", "q4_0") as fc.Arbitrary<DType>, fc.nat(99),
      ([d, n], dtype, seed) => {
        const values = Float32Array.from({ length: d * n }, (_, i) => Math.sin(i * 0.7 + seed));
        const w = engine.tensor([d, n], dtype);
        w.bytesView().set(quantize(dtype, values));
        const x = engine.from(Float32Array.from({ length: n }, (_, i) => Math.cos(i + seed)));
        const results = [1, 2, 3].map((t) => {
          engine.startThreads(t);
          const out = engine.tensor([d]);
          matvec(out, w, x);
          return out.read();
        });
        engine.startThreads(1);
        expect(results[1]).toEqual(results[0]);
        expect(results[2]).toEqual(results[0]);
      }),
    { numRuns: 25 },
  );
  engine.startThreads(1);
});

const config: LlamaConfig = { dim: 256, hiddenDim: 688, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 600, seqLen: 32,
  ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
const file = path.join(dir, "m.bin");
writeLlama2cCheckpoint(file, config, (n) => randomTensor(config, n, 3), { version: 1, tied: false });

test("a model's logits are the same at 1 and 2 threads", () => {
  const run = (threads: number) => {
    const model = buildModel(openCheckpoint(file), { threads });
    const out = [5, 17, 99, 300, 42].map((id, pos) => model.forward(id, pos).read());
    model.engine.startThreads(1);
    return out;
  };
  expect(run(2)).toEqual(run(1));
});

test("close() stops a model's worker threads; the model still runs, on the calling thread", async () => {
  // There was no way to: every model loaded with threads > 1 kept its workers, and through them its memory, for
  // the life of the process (20 loads of stories260K at 2 threads: 20 more threads, +180 MB).
  const model = buildModel(openCheckpoint(file), { threads: 3 });
  const workers = (model.engine.pool as unknown as { workers: Worker[] }).workers;
  expect(workers).toHaveLength(2);
  const exited = Promise.all(workers.map((w) => once(w, "exit")));
  const before = model.forward(5, 0).read();
  model.close();
  await exited;
  expect(model.engine.threads).toBe(1);
  expect(model.forward(5, 0).read()).toEqual(before);
  model.close(); // closing twice is harmless
});

test("threads beyond the engine's limit are refused before a worker starts, as --threads is", () => {
  // loadModel({ threads: 1000 }) started 999 workers.
  expect(() => buildModel(openCheckpoint(file), { threads: 1000 })).toThrow(new DynactError("threads must be an integer from 1 to 256, got 1000"));
  expect(() => buildModel(openCheckpoint(file), { threads: 0 })).toThrow(/threads must be an integer from 1 to 256, got 0/);
});

test.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))(
  "a process that generates with two models at 2 threads through the library exits by itself, also as node -e", () => {
    // Run as an ES module from -e (--input-type=module, which workers inherit): the workers' source used require
    // and each worker died with "require is not defined in ES module scope", taking the process with it.
    const lib = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/index.js")).href;
    const script = `import { generate, loadModel, Sampler } from ${JSON.stringify(lib)};
      const open = () => loadModel(${JSON.stringify(shared("models/stories260K.bin"))}, { tokenizer: ${JSON.stringify(shared("models/tok512.bin"))}, threads: 2 });
      const [a, b] = [open(), open()];
      const run = (m) => generate(m, { prompt: "Once", maxNewTokens: 20, sampler: new Sampler(512, { temperature: 0.8, topP: 0.9, seed: 5 }) }).text;
      const t = run(a);
      if (run(b) !== t) throw new Error("models differ");
      b.model.close();
      console.log(t === run(b) ? "same" : "differ");`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0); // null: killed at the timeout, the workers having kept it alive
    expect(r.stdout.trim()).toBe("same");
  });
