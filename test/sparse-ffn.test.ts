// Dynamic activation in the MLP: the sparse kernels against their references, and the core property — the
// gather path (real sparse kernels) equals mask mode (dense compute, zero outside S) for any index set.
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { Engine } from "../engine/engine";
import { matvec } from "../engine/ops/matvec";
import { kthLargest, selectThreshold, selectTopk } from "../engine/ops/select";
import { matvecRows, scatterAxpy } from "../engine/ops/sparse";
import {
  geluRef, matvecRef, matvecRowsRef, relu2Ref, reluRef, scatterAxpyRef, selectThresholdRef, selectTopkRef, siluRef,
} from "../engine/reference";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES } from "../models/activation";
import type { ActivationName, LlamaConfig } from "../models/config";
import { FeedForward } from "../models/ffn";
import { FixedGate } from "../models/gates/fixed-gate";
import type { NeuronGate } from "../models/gates/neuron-gate";
import { ThresholdGate } from "../models/gates/threshold-gate";
import type { LayerWeights } from "../models/weights";
import { indexSet, indexTensor } from "./kernel-harness";

let engine: Engine;
beforeAll(() => {
  engine = Engine.create(64 << 20);
});

/** A sorted index subset of [0, n): empty, full, random, or one contiguous run. */

// Allocations for the property runs come from one engine; each run's tensors are fresh (the arena is ample).
function tensorOf(values: ArrayLike<number>, shape: number[] = [values.length]): Tensor {
  return engine.from(values, shape);
}
const indices = (idx: number[], size: number): Tensor => indexTensor(engine, idx, size);

describe("sparse kernels", () => {
  test("matvecRows equals the reference and matvec's rows bit for bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }).chain((d) => fc.tuple(fc.constant(d), indexSet(d))), fc.integer({ min: 1, max: 70 }),
        fc.nat(1000), ([d, idx], n, seed) => {
        const w = Float32Array.from({ length: d * n }, (_, i) => Math.sin(i * 0.37 + seed));
        const x = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11 + seed));
        const W = tensorOf(w, [d, n]);
        const X = tensorOf(x);
        const out = engine.tensor([d]);
        matvecRows(out, W, X, indices(idx, d), idx.length);
        const dense = engine.tensor([d]);
        matvec(dense, W, X);
        const ref = matvecRowsRef(w, x, n, idx);
        idx.forEach((r, k) => {
          expect(out.f32()[k]).toBe(dense.f32()[r]); // same reduction order as the dense kernel
          // f32 sum of n products vs f64: |err| <= n·2^-24·Σ|w·x| with |w|,|x| <= 1
          expect(Math.abs(out.f32()[k] - ref[k])).toBeLessThanOrEqual(n * 2 ** -24 * n + 1e-30);
        });
      }),
      { numRuns: 150 },
    );
  });

  test("scatterAxpy equals Σ a_k · Wt[S_k] (any index set, in any grouping of its rows)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }).chain((h) => fc.tuple(fc.constant(h), indexSet(h))), fc.integer({ min: 1, max: 37 }),
        fc.nat(1000), ([h, idx], dim, seed) => {
        const wt = Float32Array.from({ length: h * dim }, (_, i) => Math.sin(i * 0.7 + seed));
        const a = Float32Array.from(idx, (_, k) => Math.cos(k + seed) * (k % 5 === 0 ? 1e-3 : 1));
        const out = engine.tensor([dim]);
        scatterAxpy(out, tensorOf(wt, [h, dim]), tensorOf(a.length ? a : [0]), indices(idx, h), idx.length);
        const ref = scatterAxpyRef(wt, a, idx, dim);
        // Each output is |S| products summed in f32 (four at a time, then into out): one rounding per product and
        // per addition, |err| <= (|S| + 2)·U·Σ_k |a_k·w_kj| (the reference is f64).
        ref.forEach((r, j) => {
          let mag = 0;
          idx.forEach((s, k) => (mag += Math.abs(a[k] * wt[s * dim + j])));
          expect(Math.abs(out.f32()[j] - r)).toBeLessThanOrEqual((idx.length + 2) * 2 ** -24 * mag + 1e-38);
        });
      }),
      { numRuns: 150 },
    );
  });

  test("selectThreshold and selectTopk equal their references (ties to the lowest id)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 130 }).chain((n) => fc.tuple(
        fc.array(fc.integer({ min: 0, max: 6 }).map((v) => v / 2), { minLength: n, maxLength: n }),
        fc.integer({ min: 0, max: n + 2 }), fc.integer({ min: -1, max: 7 }).map((v) => v / 2))), ([scores, k, eps]) => {
        const s = tensorOf(scores);
        const idx = engine.tensor([scores.length], "i32");
        const count = selectThreshold(idx, s, eps);
        expect(Array.from(idx.i32().subarray(0, count))).toEqual(selectThresholdRef(scores, eps));
        const work = engine.tensor([scores.length]);
        const kc = selectTopk(idx, s, k, work);
        expect(Array.from(idx.i32().subarray(0, kc))).toEqual(selectTopkRef(scores, k));
        if (k >= 1 && k <= scores.length) {
          expect(kthLargest(s, k, work)).toBe([...scores].sort((a, b) => b - a)[k - 1]);
        }
      }),
      { numRuns: 300 },
    );
    // Strict: a score of exactly eps is dropped (eps = 0 drops exact zeros).
    const idx = engine.tensor([8], "i32");
    const count = selectThreshold(idx, tensorOf([0, 1, 0, 2, 0, 0, 3, 0]), 0);
    expect(Array.from(idx.i32().subarray(0, count))).toEqual([1, 3, 6]);
  });
});

interface Ffn {
  config: LlamaConfig;
  rows: LayerWeights; // W_down [dim, hidden]
  transposed: LayerWeights; // W_down [hidden, dim]
}

function randomFfn(dim: number, hidden: number, seed: number): Ffn {
  const config: LlamaConfig = { dim, hiddenDim: hidden, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 4, seqLen: 4,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const rnd = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 13.1 + i * 1.7 + k) * 0.5);
  const wGate = tensorOf(rnd(hidden * dim, 1), [hidden, dim]);
  const wUp = tensorOf(rnd(hidden * dim, 2), [hidden, dim]);
  const down = rnd(dim * hidden, 3);
  const downT = new Float32Array(hidden * dim);
  for (let r = 0; r < dim; r++) for (let c = 0; c < hidden; c++) downT[c * dim + r] = down[r * hidden + c];
  const unused = tensorOf([0]);
  const base = { attnNorm: unused, wq: unused, wk: unused, wv: unused, wo: unused, ffnNorm: unused, wGate, wUp };
  return {
    config,
    rows: { ...base, wDown: tensorOf(down, [dim, hidden]), downTransposed: false, woTransposed: false },
    transposed: { ...base, wDown: tensorOf(downT, [hidden, dim]), downTransposed: true, woTransposed: false },
  };
}

function runFfn(f: Ffn, act: ActivationName, gate: NeuronGate | null, mode: "mask" | "gather", x: Float32Array): Float32Array {
  const ffn = new FeedForward(engine, f.config, ACTIVATION_MODULES[act]);
  ffn.configure(gate, mode, false);
  const out = engine.tensor([f.config.dim]);
  ffn.run(0, mode === "gather" ? f.transposed : f.rows, tensorOf(x), out);
  return out.read();
}

const ACT_REF: Record<ActivationName, (x: Float32Array) => Float32Array> = { silu: siluRef, relu: reluRef, relu2: relu2Ref, gelu: geluRef };

/**
 * max_j Σ_{i∈S} |a_i · W_down[j,i]|: the magnitude of what the down product sums. Two summation orders of the same
 * f32 terms differ by a small multiple of 2^-24 of this, however much the terms cancel.
 */
function contributionScale(f: Ffn, act: ActivationName, idx: number[] | null, x: Float32Array): number {
  const { dim, hiddenDim: h } = f.config;
  const g = ACT_REF[act](matvecRef(f.rows.wGate.f32(), x, h, dim));
  const u = matvecRef(f.rows.wUp.f32(), x, h, dim);
  const wd = f.rows.wDown.f32();
  let scale = 0;
  for (let j = 0; j < dim; j++) {
    let s = 0;
    for (const i of idx ?? g.keys()) s += Math.abs(g[i] * u[i] * wd[j * h + i]);
    scale = Math.max(scale, s);
  }
  return scale;
}

function expectClose(a: Float32Array, b: Float32Array, scale: number, rel: number): void {
  a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(rel * scale + 1e-30));
}

describe("FFN execution modes", () => {
  test("gather equals mask for any index set, activation and gate kind (1e-5 relative)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 70 }).chain((h) => fc.tuple(fc.constant(h), indexSet(h))),
        fc.constantFrom<ActivationName>("silu", "relu", "relu2", "gelu"), fc.constantFrom<"gate" | "input">("gate", "input"),
        fc.nat(1000),
        (dim, [h, idx], act, chooses, seed) => {
          const f = randomFfn(dim, h, seed);
          const x = Float32Array.from({ length: dim }, (_, i) => Math.cos(seed + i));
          const gate = new FixedGate(chooses, idx);
          // Both sum the same f32 products in different orders: 1e-5 of their magnitude covers the rounding.
          expectClose(runFfn(f, act, gate, "gather", x), runFfn(f, act, gate, "mask", x), contributionScale(f, act, idx, x), 1e-5);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a gate keeping every neuron takes the dense path: the bits of no gate, in both modes", () => {
    const f = randomFfn(24, 50, 3);
    const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i));
    const all = Array.from({ length: 50 }, (_, i) => i);
    const dense = runFfn(f, "silu", null, "mask", x);
    expect(runFfn(f, "silu", new FixedGate("gate", all), "mask", x)).toEqual(dense);
    expect(runFfn(f, "silu", new FixedGate("input", all), "gather", x)).toEqual(runFfn(f, "silu", null, "gather", x));
  });

  test("ReLU: dropping exactly the zero activations is lossless (gather vs dense)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 80 }), fc.nat(1000), (dim, h, seed) => {
        const f = randomFfn(dim, h, seed);
        const x = Float32Array.from({ length: dim }, (_, i) => Math.cos(seed * 3 + i));
        const keepNonZero = new ThresholdGate("relu0", "act", [0], null); // keeps |act| > 0
        expectClose(runFfn(f, "relu", keepNonZero, "gather", x), runFfn(f, "relu", null, "mask", x), contributionScale(f, "relu", null, x), 1e-5);
      }),
      { numRuns: 200 },
    );
  });
});
