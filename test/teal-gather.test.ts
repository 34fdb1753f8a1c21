// TEAL run as column-gather products (gather mode): every linear stored transposed at load, each product reading
// only the columns of its input's nonzero entries. The column-gather op against the reference, and the core
// property — gather equals mask (zeroed inputs, dense products) on whole models for any zero pattern.
// Tolerances in units of U = 2^-24 (f32's unit roundoff).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { randomTensor } from "../bench/random-model";
import { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { matvecColumns } from "../engine/ops/sparse";
import { matvecRef } from "../engine/reference";
import { calibrateTeal } from "../eval/teal";
import { perplexity } from "../eval/perplexity";
import { readTextTokens } from "../eval/text";
import type { LlamaConfig } from "../models/config";
import { writeGguf } from "../models/formats/gguf";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { FixedGate } from "../models/gates/fixed-gate";
import { topHeadsGate } from "../models/gates/head-gate";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import type { TealHook, TealPoint } from "../models/teal";
import type { Tensor } from "../engine/tensor";
import { haveAssets, shared } from "./assets";

const U = 2 ** -24;
let engine: Engine;
let dir: string;
beforeAll(() => {
  engine = Engine.create(32 << 20);
  dir = mkdtempSync(path.join(os.tmpdir(), "dynact-teal-gather-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Which of n inputs are zero: none, all, random, or one contiguous run. */
const zeroSet = (n: number) =>
  fc.oneof(
    fc.constant(new Set<number>()),
    fc.constant(new Set(Array.from({ length: n }, (_, i) => i))),
    fc.uniqueArray(fc.nat(n - 1), { maxLength: n }).map((a) => new Set(a)),
    fc.tuple(fc.nat(n - 1), fc.nat(n)).map(([s, len]) => new Set(Array.from({ length: Math.min(len, n - s) }, (_, i) => s + i))),
  );

test("matvecColumns: W·x over Wᵀ reading only the nonzero inputs' rows equals the reference", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 70 }).chain((n) => fc.tuple(fc.constant(n), zeroSet(n))), fc.nat(1000),
      (d, [n, zeros], seed) => {
        const w = Float32Array.from({ length: d * n }, (_, i) => Math.sin(seed + i * 0.37));
        const x = Float32Array.from({ length: n }, (_, j) => (zeros.has(j) ? 0 : Math.cos(seed * 3 + j)));
        const wt = new Float32Array(n * d);
        for (let r = 0; r < d; r++) for (let c = 0; c < n; c++) wt[c * d + r] = w[r * n + c];
        const out = engine.tensor([d]);
        const idx = engine.tensor([n], "i32");
        const vals = engine.tensor([n]);
        const count = matvecColumns(out, engine.from(wt, [n, d]), engine.from(x), idx, vals);
        const nonzero = Array.from({ length: n }, (_, j) => j).filter((j) => x[j] !== 0);
        expect(count).toBe(nonzero.length);
        expect(Array.from(idx.i32().subarray(0, count))).toEqual(nonzero);
        const ref = matvecRef(w, x, d, n);
        for (let r = 0; r < d; r++) {
          // |S| products summed in f32 (pairs of four rows, then into out): |err| <= (|S| + 2)·U·Σ|w·x|.
          let mag = 0;
          for (const j of nonzero) mag += Math.abs(w[r * n + j] * x[j]);
          expect(Math.abs(out.f32()[r] - ref[r])).toBeLessThanOrEqual((count + 2) * U * mag + 1e-38);
        }
      },
    ),
    { numRuns: 300 },
  );
});

/**
 * Zeroes a fixed pseudo-random fraction of each input, chosen by (call, point, index) and not by value: the two
 * modes' inputs differ by rounding, and a value-based threshold could then zero an entry in one mode only.
 */
class PatternTeal implements TealHook {
  private calls = 0;
  constructor(private readonly fraction: number, private readonly seed: number) {}
  apply(_l: number, point: TealPoint, x: Tensor): void {
    const v = x.f32();
    const c = this.calls++;
    for (let j = 0; j < v.length; j++) {
      const h = (Math.imul(j + 1, 2654435761) ^ Math.imul(c * 4 + point + 1, 40503) ^ this.seed) >>> 0;
      if ((h % 1000) / 1000 < this.fraction) v[j] = 0;
    }
  }
}

describe("TEAL gather mode on whole models", () => {
  test("gather (column-gather products over transposed weights) equals mask for any zero fraction", () => {
    let file = 0;
    fc.assert(
      fc.property(
        fc.record({
          nKvHeads: fc.integer({ min: 1, max: 2 }), group: fc.integer({ min: 1, max: 2 }), headSize: fc.constantFrom(2, 4, 8),
          hidden: fc.integer({ min: 1, max: 40 }), nLayers: fc.integer({ min: 1, max: 2 }), seed: fc.nat(1000),
          fraction: fc.constantFrom(0, 0.5, 0.9, 1),
        }),
        fc.array(fc.integer({ min: 0, max: 19 }), { minLength: 1, maxLength: 6 }),
        (m, ids) => {
          const nHeads = m.nKvHeads * m.group;
          const config: LlamaConfig = { dim: nHeads * m.headSize, hiddenDim: m.hidden, nLayers: m.nLayers, nHeads,
            nKvHeads: m.nKvHeads, vocabSize: 20, seqLen: 8, ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
          const f = path.join(dir, `m${file++}.bin`);
          writeLlama2cCheckpoint(f, config, (name) => randomTensor(config, name, m.seed), { version: 1, tied: false });
          const run = (transposeInputs: boolean) => {
            const model = buildModel(openCheckpoint(f), { transposeInputs });
            expect(model.weights.layers[0].inputsTransposed).toBe(transposeInputs);
            model.configureTeal(new PatternTeal(m.fraction, m.seed));
            return ids.map((t, pos) => model.forward(t, pos).read());
          };
          const mask = run(false);
          const gather = run(true);
          // Each product sums the same f32 terms in another order (a few U of their magnitude); over at most two
          // layers and six positions that stays far inside 1e-4 of the logit range.
          mask.forEach((row, p) => {
            const range = Math.max(1e-30, ...row.map(Math.abs));
            row.forEach((v, j) => expect(Math.abs(gather[p][j] - v)).toBeLessThanOrEqual(1e-4 * range));
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  test("a model loaded for TEAL gather runs no neuron or head gate; quantized weights are refused", () => {
    const config: LlamaConfig = { dim: 32, hiddenDim: 32, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 8, seqLen: 4,
      ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
    const f32 = path.join(dir, "g32.bin");
    writeLlama2cCheckpoint(f32, config, (name) => randomTensor(config, name, 1), { version: 1, tied: false });
    const model = buildModel(openCheckpoint(f32), { transposeInputs: true });
    expect(() => model.configureFfn({ gate: new FixedGate("gate", [0]), mode: "gather" })).toThrow(DynactError);
    expect(() => model.configureHeads(topHeadsGate("topk:1", 1), "keep")).toThrow(/TEAL's gather mode/);
    const q8 = path.join(dir, "g8.gguf");
    writeGguf(q8, config, (name) => randomTensor(config, name, 1), { dtype: "q8_0", tied: false });
    expect(() => buildModel(openCheckpoint(q8), { transposeInputs: true })).toThrow(/f32 only/);
  });
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("TEAL gather on stories260K", () => {
  test("teal:0.5 calibrated once: gather mode scores the text as mask mode does", () => {
    const opts = { tokenizer: shared("models/tok512.bin") };
    const mask = loadModel(shared("models/stories260K.bin"), opts);
    const gather = loadModel(shared("models/stories260K.bin"), { ...opts, transposeInputs: true });
    const ids = readTextTokens(shared("data/tinystories_val.txt"), mask.tokenizer, 1536);
    const teal = calibrateTeal(mask.model, ids.slice(512), 0.5, { ctx: 256 });
    mask.model.configureTeal(teal);
    gather.model.configureTeal(teal);
    const a = perplexity(mask.model, ids.slice(0, 256), { ctx: 128 }).mean_nll;
    const b = perplexity(gather.model, ids.slice(0, 256), { ctx: 128 }).mean_nll;
    // The two modes sum the same products in other orders; a rounding difference can also move an input across its
    // threshold (then zeroed in one mode only): rare, and such an entry is one of the smallest inputs. Measured
    // |Δ| = 8.5e-9 of the mean NLL; 1e-5 leaves room for a few such flips, not for a wrong product.
    expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5 * a);
  });
});
