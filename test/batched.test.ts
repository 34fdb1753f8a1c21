// Batched prompt processing: the GEMM kernels equal the GEMV of each token bit for bit (every dtype, random shapes
// with SIMD tails, row ranges, threads), and LlamaModel.forwardBatch gives exactly the token-by-token logits —
// on random tiny models, on stories260K, at 1 and 2 threads — so every golden test of forward() covers it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomTensor } from "../bench/random-model";
import { activationBytes, type DType } from "../engine/dtype";
import { DynactError, ShapeError } from "../engine/errors";
import { matmul } from "../engine/ops/matmul";
import { matvec } from "../engine/ops/matvec";
import { quantize } from "../engine/quant";
import { nll, perplexity } from "../eval/perplexity";
import type { LlamaConfig } from "../models/config";
import { writeGguf } from "../models/formats/gguf";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import type { LlamaModel } from "../models/llama";
import { buildModel, openCheckpoint } from "../models/load";
import { FIXTURES, haveAssets, shared } from "./assets";
import { expectGuards, expectSameBits, harnessEngine, place, placeBytes, shift, size, splits, vec } from "./kernel-harness";

const WEIGHT_DTYPES = ["f32", "f16", "bf16", "q8_0", "q4_0"] as const;
const MAX_TOKENS = 9;
const MAX_BLOCKS = 10; // longest quantized row, in 32-value blocks

beforeAll(() => harnessEngine().reserveScratch(MAX_TOKENS * activationBytes(MAX_BLOCKS * 32)));

describe("matmul (GEMM)", () => {
  const gemmCase = fc.constantFrom(...WEIGHT_DTYPES).chain((dtype) => {
    const quant = dtype === "q8_0" || dtype === "q4_0";
    const n = quant ? fc.integer({ min: 1, max: MAX_BLOCKS }).map((b) => 32 * b) : size(300);
    return fc.tuple(size(40), n, fc.integer({ min: 1, max: MAX_TOKENS })).chain(([d, n, tokens]) => fc.record({
      dtype: fc.constant(dtype), d: fc.constant(d), n: fc.constant(n), tokens: fc.constant(tokens),
      w: vec(d * n), x: vec(tokens * n), ranges: splits(d), shift,
    }));
  });

  it("every output is the GEMV of its token bit for bit, in any row range", () => {
    fc.assert(fc.property(gemmCase, ({ dtype, d, n, tokens, w, x, ranges, shift }) => {
      const engine = harnessEngine();
      const wt = placeBytes(0, dtype, [d, n], 2 * shift, quantize(dtype, w));
      const xt = place(1, [tokens, n], shift, x);
      const out = place(2, [tokens, d], shift);
      matmul(out, wt, xt);
      expectGuards("matmul", out);
      const got = out.read();
      // Row ranges, as the pool splits them: each range writes its rows only, with the same bits.
      const quant = dtype === "q8_0" || dtype === "q4_0";
      const xArg = quant ? engine.scratch("test", 0) : xt.offset; // matmul left the quantized rows there
      const kernel = engine.kernels[`gemm_${dtype}`];
      for (const [start, end] of ranges) {
        const part = place(4, [tokens, d], shift);
        kernel(part.offset, wt.offset, xArg, n, start, end, tokens, d);
        expectGuards("gemm range", part);
        const p = part.read();
        for (let t = 0; t < tokens; t++) {
          expectSameBits(`${dtype} rows [${start}, ${end}) token ${t}`, p.subarray(t * d + start, t * d + end),
            got.subarray(t * d + start, t * d + end));
        }
      }
      const row = place(3, [d], shift);
      for (let t = 0; t < tokens; t++) {
        matvec(row, wt, xt.row(t));
        expectSameBits(`${dtype} token ${t}`, got.subarray(t * d, (t + 1) * d), row.read());
      }
    }), { numRuns: 300 });
  });

  it("is the same bits through the worker pool at 2 and 3 threads", () => {
    const engine = harnessEngine();
    fc.assert(fc.property(fc.constantFrom(...WEIGHT_DTYPES), fc.integer({ min: 60, max: 130 }), fc.integer({ min: 2, max: 8 }),
      fc.integer({ min: 2, max: MAX_TOKENS }), fc.nat(99), (dtype: DType, d, blocks, tokens, seed) => {
        const n = 32 * blocks;
        const wt = placeBytes(0, dtype, [d, n], 0,
          quantize(dtype, Float32Array.from({ length: d * n }, (_, i) => Math.sin(i * 0.7 + seed))));
        const xt = place(1, [tokens, n], 0, Float32Array.from({ length: tokens * n }, (_, i) => Math.cos(i + seed)));
        const results = [1, 2, 3].map((threads) => {
          engine.startThreads(threads);
          const out = place(2 + threads, [tokens, d], 0);
          matmul(out, wt, xt);
          return out.read();
        });
        engine.startThreads(1);
        expectSameBits(`${dtype} 2 threads`, results[1], results[0]);
        expectSameBits(`${dtype} 3 threads`, results[2], results[0]);
      }), { numRuns: 20 });
    engine.startThreads(1);
  });

  it("rejects mismatched shapes and weight types it has no kernel for", () => {
    const [w, x] = [place(0, [3, 8], 0), place(1, [2, 8], 0)];
    expect(() => matmul(place(2, [2, 4], 0), w, x)).toThrow(ShapeError);
    expect(() => matmul(place(2, [3, 3], 0), w, x)).toThrow(ShapeError);
    expect(() => matmul(place(2, [2, 3], 0), w, place(1, [2, 7], 0))).toThrow(ShapeError);
    expect(() => matmul(place(2, [2, 3], 0), placeBytes(0, "i32", [3, 8], 0), x)).toThrow(ShapeError);
  });
});

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-batched-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Logits of ids[0…] at positions 0… by forward(), one copy per position. */
function tokenByToken(model: LlamaModel, ids: readonly number[]): Float32Array[] {
  return ids.map((id, pos) => model.forward(id, pos).read());
}

/** The same through forwardBatch in chunks of the given sizes (the rest by forward()), on a fresh pass. */
function batched(model: LlamaModel, ids: readonly number[], chunks: readonly number[]): Float32Array[] {
  const out: Float32Array[] = [];
  let pos = 0;
  for (const len of chunks) {
    const n = Math.min(len, ids.length - pos);
    if (n <= 0) break;
    const logits = model.forwardBatch(ids.slice(pos, pos + n), pos);
    expect(logits.shape).toEqual([n, model.config.vocabSize]);
    for (let t = 0; t < n; t++) out.push(logits.row(t).read());
    pos += n;
  }
  for (; pos < ids.length; pos++) out.push(model.forward(ids[pos], pos).read());
  return out;
}

function expectSameLogits(got: Float32Array[], want: Float32Array[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, pos) => expectSameBits(`logits at position ${pos}`, g, want[pos]));
}

describe("forwardBatch", () => {
  // Random tiny models: head sizes, GQA groups, hidden sizes and vocabularies with SIMD tails; weights as f32
  // (llama2.c) or f16/bf16/q8_0/q4_0 (GGUF; dims multiples of 32 so the quantized types apply).
  const modelCase = fc.record({
    dtype: fc.constantFrom("f32", "f32", "f16", "bf16", "q8_0", "q4_0") as fc.Arbitrary<DType>,
    headSize: fc.constantFrom(2, 6, 8, 16),
    nKvHeads: fc.integer({ min: 1, max: 3 }),
    group: fc.integer({ min: 1, max: 3 }),
    hidden: fc.integer({ min: 1, max: 90 }),
    vocabSize: fc.integer({ min: 4, max: 150 }),
    nLayers: fc.integer({ min: 1, max: 3 }),
    seqLen: fc.integer({ min: 2, max: 90 }),
    act: fc.constantFrom("silu", "relu") as fc.Arbitrary<"silu" | "relu">,
    seed: fc.nat(1000),
  }).chain((m) => fc.record({
    m: fc.constant(m),
    ids: fc.array(fc.integer({ min: 0, max: m.vocabSize - 1 }), { minLength: 1, maxLength: m.seqLen }),
    chunks: fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 4 }),
  }));

  it("gives the token-by-token logits bit for bit on random tiny models (any dtype, chunking, 1 and 2 threads)", () => {
    let file = 0;
    fc.assert(fc.property(modelCase, ({ m, ids, chunks }) => {
      const quant = m.dtype !== "f32";
      const nHeads = m.nKvHeads * m.group;
      const headSize = quant ? 32 : m.headSize;
      const config: LlamaConfig = {
        dim: nHeads * headSize, hiddenDim: quant ? 32 * Math.ceil(m.hidden / 32) : m.hidden, nLayers: m.nLayers,
        nHeads, nKvHeads: m.nKvHeads, vocabSize: m.vocabSize, seqLen: m.seqLen,
        ropeTheta: 10000, normEps: 1e-5, activation: m.act,
      };
      const f = path.join(dir, `m${file++}.${quant ? "gguf" : "bin"}`);
      const tensor = (name: string) => randomTensor(config, name, m.seed);
      if (quant) writeGguf(f, config, tensor, { dtype: m.dtype as "f16", tied: false });
      else writeLlama2cCheckpoint(f, config, tensor, { version: 1, tied: false });
      for (const threads of [1, 2]) {
        const model = buildModel(openCheckpoint(f), { threads });
        try {
          expect(model.batched).toBe(true);
          const clamped = chunks.map((c) => Math.min(c, model.chunkSize));
          expectSameLogits(batched(model, ids, clamped), tokenByToken(model, ids));
        } finally {
          model.engine.startThreads(1);
        }
      }
    }), { numRuns: 25 });
  });

  it("returns the last position's logits alone with logits: \"last\", and prefill chains chunks", () => {
    const model = smallModel("last", 200, 5);
    const ids = Array.from({ length: 150 }, (_, i) => (i * 37) % 77);
    const want = tokenByToken(model, ids);
    const last = model.forwardBatch(ids.slice(0, 10), 0, { logits: "last" });
    expect(last.shape).toEqual([1, 77]);
    expectSameBits("last", last.read(), want[9]);
    expect(model.chunkSize).toBe(64);
    expectSameBits("prefill", model.prefill(ids).read(), want[149]);
    expect(() => model.forwardBatch(ids.slice(0, 65), 0)).toThrow(/1 to 64 tokens/);
    expect(() => model.forwardBatch([1, 2], 199)).toThrow(/outside the context/);
  });

  it("a run may restart at any position already run, never skip past the last one (it read stale or zero K/V)", () => {
    const model = smallModel("skip", 40, 6);
    // A fresh model at position 5 returned logits attending over five zero keys and values.
    expect(() => model.forward(3, 5)).toThrow(new DynactError("position 5 skips positions 0…4: run those first (a sequence starts at 0)"));
    expect(() => model.forwardBatch([3, 4], 1)).toThrow(DynactError);
    const ids = [3, 9, 27, 5, 60, 11];
    const want = tokenByToken(model, ids);
    expect(() => model.forward(1, 7)).toThrow(/position 7 skips positions 6…6/);
    // Rewinding is allowed (evaluate scores each choice after a shared prefix): positions after it no longer count.
    model.prefill(ids.slice(0, 2));
    expect(() => model.forward(1, 3)).toThrow(/position 3 skips positions 2…2/);
    expectSameBits("after a rewind", model.prefill(ids.slice(2), 2).read(), want[5]);
    expect(model.forward(8, 6).read()).toHaveLength(77);
  });
});

describe.runIf(haveAssets("models/stories260K.bin"))("forwardBatch on stories260K", () => {
  const golden = JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-greedy.json"), "utf8")) as {
    cases: { prompt_ids: number[]; generated: number[] }[];
  };
  const ids = [...golden.cases[0].prompt_ids, ...golden.cases[0].generated].slice(0, 300);

  for (const threads of [1, 2]) {
    it(`gives the token-by-token logits bit for bit at ${threads} thread(s)`, () => {
      const model = buildModel(openCheckpoint(shared("models/stories260K.bin")), { threads });
      try {
        expectSameLogits(batched(model, ids, [5, 64, 64, 1, 64, 33, 64]), tokenByToken(model, ids));
      } finally {
        model.engine.startThreads(1);
      }
    });
  }

  it("perplexity through the batched path equals the token-by-token sum", () => {
    const model = buildModel(openCheckpoint(shared("models/stories260K.bin")), { bosId: 1 }); // tok512's
    const text = ids.slice(1);
    const ctx = 150;
    const got = perplexity(model, text, { ctx });
    let total = 0;
    for (let start = 0; start < text.length; start += ctx - 1) {
      const w = text.slice(start, start + ctx - 1);
      let sum = 0; // per window, then into the total, as perplexity() adds them
      [1, ...w.slice(0, -1)].forEach((id, pos) => (sum += nll(model.forward(id, pos).f32(), w[pos])));
      total += sum;
    }
    expect(got.mean_nll).toBe(total / text.length);
  });
});

/** A 2-layer model of random weights (vocabulary 77) with `seqLen` positions, written as a llama2.c file and built. */
function smallModel(name: string, seqLen: number, seed: number): LlamaModel {
  const config: LlamaConfig = { dim: 64, hiddenDim: 100, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 77, seqLen,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const f = path.join(dir, `${name}.bin`);
  writeLlama2cCheckpoint(f, config, (n) => randomTensor(config, n, seed), { version: 0, tied: false });
  return buildModel(openCheckpoint(f));
}
