// The sparse FFN over quantized weights: the Q8_0/Q4_0 row gather (gate/up), the column scatter over a W_downᵀ
// re-blocked to Q8_0 or kept as F16 (down), the load-time transpose/requantization, and the core property for
// quantized models — gather equals mask mode on the same weights. What is equal: both modes run with the same
// transposed W_down (requantized Q8_0 or F16), which differs from the file's Q8_0 W_down by the requantization;
// that difference is measured on perplexity (README), not asserted here.
// Tolerances in units of U = 2^-24 (f32's unit roundoff), derived at each assertion.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { randomTensor } from "../bench/random-model";
import { activationBytes, tensorBytes, type DType } from "../engine/dtype";
import { Engine } from "../engine/engine";
import { ShapeError } from "../engine/errors";
import { matvec } from "../engine/ops/matvec";
import { matvecRows, scatterAxpy } from "../engine/ops/sparse";
import { dequantize, quantize, quantizeQ8_0 } from "../engine/quant";
import {
  geluRef, matvecRef, relu2Ref, reluRef, matvecRowsDTypeRef, scatterAxpyDTypeRef, siluRef, transposeEncodeRef,
} from "../engine/reference";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES } from "../models/activation";
import type { ActivationName, LlamaConfig } from "../models/config";
import { FeedForward } from "../models/ffn";
import { writeGguf } from "../models/formats/gguf";
import { FixedGate } from "../models/gates/fixed-gate";
import type { NeuronGate } from "../models/gates/neuron-gate";
import { modelFingerprint } from "../models/gates/calibration";
import { buildModel, openCheckpoint } from "../models/load";
import { readTensorData, transposedDownDType, weightBytes, type LayerWeights } from "../models/weights";
import { indexSet, indexTensor } from "./kernel-harness";

const U = 2 ** -24;
const MAX_BLOCKS = 6;

let engine: Engine;
let dir: string;
beforeAll(() => {
  engine = Engine.create(96 << 20);
  engine.reserveScratch(activationBytes(MAX_BLOCKS * 32)); // dense products quantize x wider than Q8_0 rows
  dir = mkdtempSync(path.join(os.tmpdir(), "dynact-sparse-quant-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sorted index subset of [0, n): empty, full, random, or one contiguous run. */

/** Seeded values in (-amp, amp) with a few exact zeros and a spread of magnitudes within each 32-block. */
function values(n: number, seed: number, amp = 1): Float32Array {
  let s = (seed * 2654435761 + 1) >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const u = s / 2 ** 32;
    if (u < 0.03) return 0;
    return amp * Math.sin(u * 1e4) * (u < 0.2 ? 1e-3 : 1);
  });
}

function weights(dtype: DType, v: Float32Array, shape: number[]): { t: Tensor; bytes: Uint8Array } {
  const bytes = quantize(dtype, v);
  const t = engine.tensor(shape, dtype);
  t.bytesView().set(bytes);
  return { t, bytes };
}

const indices = (idx: number[], size: number): Tensor => indexTensor(engine, idx, size);

describe("quantized sparse kernels", () => {
  test("matvecRows over Q8_0/Q4_0 rows equals the reference, and the dense kernel's rows bit for bit", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<DType>("q8_0", "q4_0"), fc.integer({ min: 1, max: 21 }).chain((d) => fc.tuple(fc.constant(d), indexSet(d))),
        fc.integer({ min: 1, max: MAX_BLOCKS }), fc.nat(10_000),
        (dtype, [d, idx], nb, seed) => {
          const n = 32 * nb;
          const wv = values(d * n, seed);
          const x = values(n, seed + 1, 3);
          const { t: W, bytes } = weights(dtype, wv, [d, n]);
          const X = engine.from(x, [n]);
          const out = engine.tensor([d]);
          out.f32().fill(NaN);
          matvecRows(out, W, X, indices(idx, d), idx.length);
          const dense = engine.tensor([d]);
          matvec(dense, W, X);
          const ref = matvecRowsDTypeRef(dtype, bytes, x, d, n, idx);
          const wd = dequantize(dtype, bytes, d * n);
          const xd = dequantize("q8_0", quantizeQ8_0(x), n);
          idx.forEach((r, k) => {
            // The same per-row formula as the dense kernel: fl(acc + fl(S_b · fl(d_w·d_x))) block by block.
            expect(out.f32()[k]).toBe(dense.f32()[r]);
            // S_b (integer) and d_w·d_x (two 11-bit f16 significands) are exact; one rounding per block for the
            // scaling and nb - 1 for the accumulation: |err| <= (nb + 1)·U·Σ|w_i·x_i| (the ref is f64).
            let mag = 0;
            for (let i = 0; i < n; i++) mag += Math.abs(wd[r * n + i] * xd[i]);
            expect(Math.abs(out.f32()[k] - ref[k])).toBeLessThanOrEqual((nb + 1) * U * mag + 1e-38);
          });
          expect(Array.from(out.f32().subarray(idx.length)).every(Number.isNaN)).toBe(true); // nothing written past count
        },
      ),
      { numRuns: 250 },
    );
  });

  test("scatterAxpy over a Q8_0 or F16 Wᵀ equals Σ_k a_k · dequantized row S_k", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<DType>("q8_0", "f16"), fc.integer({ min: 1, max: 45 }).chain((h) => fc.tuple(fc.constant(h), indexSet(h))),
        fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 70 }), fc.nat(10_000),
        (dtype, [h, idx], nb, anyDim, seed) => {
          const dim = dtype === "q8_0" ? 32 * nb : anyDim;
          const { t: Wt, bytes } = weights(dtype, values(h * dim, seed), [h, dim]);
          const a = values(Math.max(idx.length, 1), seed + 7, 5);
          const out = engine.tensor([dim]);
          out.f32().fill(NaN); // the kernel overwrites out (zero first)
          scatterAxpy(out, Wt, engine.from(a), indices(idx, h), idx.length);
          const ref = scatterAxpyDTypeRef(dtype, bytes, a, idx, h, dim);
          const wd = dequantize(dtype, bytes, h * dim);
          for (let j = 0; j < dim; j++) {
            // Each term fl(fl(a_k·d)·q) (Q8_0) or fl(a_k·w) (F16, w exact in f32) carries <= 2 roundings, and
            // the |S| terms are summed with |S| roundings (pairs, then into out): |err| <= (|S| + 2)·U·Σ|a_k·w_kj|.
            let mag = 0;
            idx.forEach((r, k) => (mag += Math.abs(a[k] * wd[r * dim + j])));
            expect(Math.abs(out.f32()[j] - ref[j])).toBeLessThanOrEqual((idx.length + 2) * U * mag + 1e-38);
          }
        },
      ),
      { numRuns: 250 },
    );
  });

  test("matvecRows over f16/bf16 rows gives the dense kernel's rows bit for bit (any row length)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<DType>("f16", "bf16"), fc.integer({ min: 1, max: 21 }).chain((d) => fc.tuple(fc.constant(d), indexSet(d))),
        fc.integer({ min: 1, max: 100 }), fc.nat(10_000),
        (dtype, [d, idx], n, seed) => {
          const W = weights(dtype, values(d * n, seed), [d, n]).t;
          const X = engine.from(values(n, seed + 1, 3), [n]);
          const out = engine.tensor([d]);
          out.f32().fill(NaN);
          matvecRows(out, W, X, indices(idx, d), idx.length);
          const dense = engine.tensor([d]);
          matvec(dense, W, X);
          idx.forEach((r, k) => expect(Object.is(out.f32()[k], dense.f32()[r])).toBe(true));
          expect(Array.from(out.f32().subarray(idx.length)).every(Number.isNaN)).toBe(true); // nothing written past count
        },
      ),
      { numRuns: 250 },
    );
  });

  test("shape and dtype errors are ShapeErrors", () => {
    const W = weights("q8_0", values(64, 1), [2, 32]).t;
    const x = engine.tensor([32]);
    expect(() => matvecRows(engine.tensor([2]), W, engine.tensor([31]), indices([0], 1), 1)).toThrow(ShapeError);
    expect(() => matvecRows(engine.tensor([2]), W, x, indices([2], 1), 2)).toThrow(ShapeError);
    expect(() => scatterAxpy(engine.tensor([32]), weights("bf16", values(64, 1), [2, 32]).t, engine.tensor([2]), indices([0], 1), 1))
      .toThrow(/bf16 weights/);
    expect(() => matvecRows(engine.tensor([2]), engine.tensor([2, 32], "i32"), x, indices([0], 1), 1)).toThrow(/i32 weights/);
  });
});

interface QuantFfn {
  config: LlamaConfig;
  /** W_down stored transposed, as gather mode loads it: both modes run on these weights. */
  layer: LayerWeights;
  /** W_down [dim, hidden] dequantized from the transposed tensor (for the magnitude scale). */
  down: Float32Array;
  gate: Float32Array;
  up: Float32Array;
}

/**
 * A layer as loadWeights builds it in gather mode from a quantized file: gate/up [hidden, dim] in `dtype`, W_down
 * quantized as Q8_0 along hidden (as in the file) then transposed and re-encoded as `downDType` along dim.
 */
function quantFfn(dtype: DType, downDType: DType, dim: number, hidden: number, seed: number): QuantFfn {
  const config: LlamaConfig = { dim, hiddenDim: hidden, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 4, seqLen: 4,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const wGate = weights(dtype, values(hidden * dim, seed, 0.5), [hidden, dim]);
  const wUp = weights(dtype, values(hidden * dim, seed + 1, 0.5), [hidden, dim]);
  const downFile = quantize("q8_0", values(dim * hidden, seed + 2, 0.5));
  const dt = transposeEncodeRef("q8_0", downFile, dim, hidden, downDType);
  const wDown = engine.tensor([hidden, dim], downDType);
  wDown.bytesView().set(dt);
  const unused = engine.tensor([1]);
  const td = dequantize(downDType, dt, hidden * dim);
  const down = new Float32Array(dim * hidden);
  for (let i = 0; i < hidden; i++) for (let j = 0; j < dim; j++) down[j * hidden + i] = td[i * dim + j];
  return {
    config, down,
    gate: dequantize(dtype, wGate.bytes, hidden * dim),
    up: dequantize(dtype, wUp.bytes, hidden * dim),
    layer: { attnNorm: unused, wq: unused, wk: unused, wv: unused, wo: unused, ffnNorm: unused, wGate: wGate.t, wUp: wUp.t,
      wDown, downTransposed: true, woTransposed: false },
  };
}

function runFfn(f: QuantFfn, act: ActivationName, gate: NeuronGate | null, mode: "mask" | "gather", x: Float32Array): Float32Array {
  const ffn = new FeedForward(engine, f.config, ACTIVATION_MODULES[act]);
  ffn.configure(gate, mode, false);
  const out = engine.tensor([f.config.dim]);
  ffn.run(0, f.layer, engine.from(x), out);
  return out.read();
}

const ACT_REF: Record<ActivationName, (x: Float32Array) => Float32Array> = { silu: siluRef, relu: reluRef, relu2: relu2Ref, gelu: geluRef };

/** max_j Σ_{i∈S} |a_i · W_down[j,i]| (a from the dequantized weights and x rounded through Q8_0). */
function contributionScale(f: QuantFfn, act: ActivationName, idx: readonly number[], x: Float32Array): number {
  const { dim, hiddenDim: h } = f.config;
  const xq = dequantize("q8_0", quantizeQ8_0(x), dim);
  const g = ACT_REF[act](matvecRef(f.gate, xq, h, dim));
  const u = matvecRef(f.up, xq, h, dim);
  let scale = 0;
  for (let j = 0; j < dim; j++) {
    let s = 0;
    for (const i of idx) s += Math.abs(g[i] * u[i] * f.down[j * h + i]);
    scale = Math.max(scale, s);
  }
  return scale;
}

describe("quantized and 16-bit FFN execution modes", () => {
  test("gather equals mask on the same Q8_0/Q4_0/F16/BF16 weights for any index set (1e-5 relative)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<DType>("q8_0", "q4_0", "f16", "bf16"), fc.constantFrom<DType>("q8_0", "f16", "f32"),
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }).map((b) => 32 * b).chain((h) => fc.tuple(fc.constant(h), indexSet(h))),
        fc.constantFrom<ActivationName>("silu", "relu", "relu2", "gelu"), fc.constantFrom<"gate" | "input">("gate", "input"),
        fc.nat(1000),
        (dtype, downDType, dimBlocks, [h, idx], act, chooses, seed) => {
          const f = quantFfn(dtype, downDType, 32 * dimBlocks, h, seed);
          const x = Float32Array.from({ length: f.config.dim }, (_, i) => Math.cos(seed + i));
          const gate = new FixedGate(chooses, idx);
          // Gate/up rows are the dense kernel's bits (above), so a_i are equal in both modes; the down products
          // sum the same f32 terms in other groupings (|S| vs all rows, zeros included): the difference is a few
          // U of the summed magnitude per term, far inside 1e-5 of it for |S| <= 96.
          const got = runFfn(f, act, gate, "gather", x);
          const want = runFfn(f, act, gate, "mask", x);
          const scale = contributionScale(f, act, idx, x);
          got.forEach((v, j) => expect(Math.abs(v - want[j])).toBeLessThanOrEqual(1e-5 * scale + 1e-30));
        },
      ),
      { numRuns: 150 },
    );
  });

  test("a gate keeping every neuron takes the dense (transposed-down) path: the bits of no gate", () => {
    const f = quantFfn("q8_0", "q8_0", 64, 96, 5);
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const all = Array.from({ length: 96 }, (_, i) => i);
    const dense = runFfn(f, "silu", null, "gather", x);
    expect(runFfn(f, "silu", new FixedGate("input", all), "gather", x)).toEqual(dense);
    expect(runFfn(f, "silu", new FixedGate("gate", all), "mask", x)).toEqual(dense);
  });
});

describe("loading a quantized W_down transposed", () => {
  const config: LlamaConfig = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 40, seqLen: 16,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };

  test.each([
    ["q8_0", undefined, "q8_0"], ["q8_0", "f16", "f16"], ["q4_0", undefined, "q8_0"], ["f16", undefined, "f16"], ["f16", "q8_0", "q8_0"],
    ["bf16", undefined, "f32"],
  ] as const)("%s file, --down-dtype %s: W_downᵀ is %s, decoded, transposed and re-encoded along dim", (fileType, requested, want) => {
    const f = path.join(dir, `m-${fileType}-${requested}.gguf`);
    writeGguf(f, config, (name) => randomTensor(config, name, 3), { dtype: fileType, tied: false });
    const ckpt = openCheckpoint(f);
    const e = ckpt.tensors.get("blk.1.ffn_down")!;
    expect(e.dtype).toBe(fileType);
    expect(transposedDownDType(e, requested)).toBe(want);
    const model = buildModel(ckpt, { transposeDown: true, downDType: requested });
    const wd = model.weights.layers[1].wDown;
    expect(wd.dtype).toBe(want);
    expect(wd.shape).toEqual([96, 64]);
    const file = readTensorData(ckpt, "blk.1.ffn_down"); // the file's values, decoded
    expect(Array.from(wd.bytesView())).toEqual(Array.from(transposeEncodeRef("f32", new Uint8Array(file.buffer), 64, 96, want)));
    // The engine is sized for the re-encoded tensors (Q4_0 -> Q8_0 and Q8_0 -> F16 grow), which built it.
    expect(weightBytes(ckpt, { transposeDown: true, downDType: requested }) - weightBytes(ckpt))
      .toBe(config.nLayers * (tensorBytes(want, [96, 64]) - tensorBytes(fileType, [64, 96])));
    // Against the row layout: an exact transpose (f16 kept, bf16 widened) leaves the logits to rounding; re-encoding
    // a quantized W_down along dim (Q8_0, or d·q rounded to f16) moves them by about that rounding (measured ≤ 0.6%).
    const logits = model.forward(5, 0).read();
    const rows = buildModel(ckpt).forward(5, 0).read();
    const range = Math.max(...rows.map(Math.abs));
    const exact = (fileType === "f16" && want === "f16") || (fileType === "bf16" && want === "f32");
    rows.forEach((r, i) => expect(Math.abs(logits[i]! - r)).toBeLessThanOrEqual((exact ? 1e-5 : 2e-2) * range));
  });

  test.each([["f16", "f16"], ["bf16", "f32"]] as const)("a %s model runs a gate in gather mode as in mask mode (W_downᵀ %s)", (dtype, downDType) => {
    const f = path.join(dir, `${dtype}.gguf`);
    writeGguf(f, config, (name) => randomTensor(config, name, 13), { dtype, tied: false });
    const model = buildModel(openCheckpoint(f), { transposeDown: true });
    expect(model.weights.layers[0].wGate.dtype).toBe(dtype);
    expect(model.weights.layers[0].wDown.dtype).toBe(downDType);
    const logits = (mode: "mask" | "gather") => {
      model.configureFfn({ gate: new FixedGate("gate", [1, 2, 3, 40, 41, 90]), mode });
      model.beginSequence();
      return [5, 7, 11].map((t, pos) => model.forward(t, pos).read());
    };
    const [mask, gather] = [logits("mask"), logits("gather")];
    const range = Math.max(...mask.flatMap((l) => [...l].map(Math.abs)));
    mask.forEach((l, p) => l.forEach((v, i) => expect(Math.abs(v - gather[p]![i]!)).toBeLessThanOrEqual(1e-5 * range)));
  });

  test("a model's fingerprint is the same in every layout it loads in (a mask-mode calibration file serves gather mode)", () => {
    const f = path.join(dir, "fingerprint.gguf");
    writeGguf(f, config, (name) => randomTensor(config, name, 11), { dtype: "q8_0", tied: false });
    const dense = buildModel(openCheckpoint(f));
    const gather = buildModel(openCheckpoint(f), { transposeDown: true });
    expect(dense.weights.layers[0].downTransposed).toBe(false);
    expect(gather.weights.layers[0].downTransposed).toBe(true); // W_down re-blocked along its new rows
    expect(modelFingerprint(gather)).toBe(modelFingerprint(dense));
    // f32: W_o transposed for head gates, every linear transposed for TEAL's gather mode.
    const f32 = path.join(dir, "fingerprint-f32.gguf");
    writeGguf(f32, config, (name) => randomTensor(config, name, 11), { dtype: "f32", tied: false });
    const rows = modelFingerprint(buildModel(openCheckpoint(f32)));
    for (const layout of [{ transposeWo: true }, { transposeInputs: true }]) {
      const m = buildModel(openCheckpoint(f32), layout);
      expect(m.weights.layers[0].woTransposed).toBe(true);
      expect(modelFingerprint(m)).toBe(rows);
    }
    const other = path.join(dir, "fingerprint-other.gguf");
    writeGguf(other, config, (name) => randomTensor(config, name, 12), { dtype: "q8_0", tied: false });
    expect(modelFingerprint(buildModel(openCheckpoint(other)))).not.toBe(modelFingerprint(dense));
  });

  test("a Q8_0 model in gather mode: a random active set gives mask mode's logits (same transposed weights)", () => {
    const f = path.join(dir, "gather-vs-mask.gguf");
    writeGguf(f, config, (name) => randomTensor(config, name, 9), { dtype: "q8_0", tied: false });
    const model = buildModel(openCheckpoint(f), { transposeDown: true });
    const idx = Array.from({ length: 96 }, (_, i) => i).filter((i) => (i * 37) % 5 < 2);
    const run = (mode: "mask" | "gather") => {
      model.configureFfn({ gate: new FixedGate("gate", idx), mode });
      model.beginSequence();
      return [3, 17, 8].map((t, pos) => model.forward(t, pos).read());
    };
    const mask = run("mask");
    const gather = run("gather");
    // Three layers' worth of 1e-5-relative FFN differences, carried through attention: 1e-4 of the logit range.
    mask.forEach((m, p) => {
      const range = Math.max(...m.map(Math.abs));
      m.forEach((v, j) => expect(Math.abs(gather[p][j] - v)).toBeLessThanOrEqual(1e-4 * range));
    });
  });
});
