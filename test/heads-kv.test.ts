// Head sparsity and KV-cache policies: keep with every head equals dense, keep and mask give identical outputs,
// and under skip no query ever reads a hole (holes are poisoned with NaN: one read would spread it to the logits).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { randomTensor } from "../bench/random-model";
import { selectTopkRef } from "../engine/reference";
import { headSize, kvDim, type LlamaConfig } from "../models/config";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { parseHeadGateSpec, topHeadsGate, selectTopHeads, type KvPolicy } from "../models/gates/head-gate";
import type { LlamaModel } from "../models/llama";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { haveAssets, shared } from "./assets";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-heads-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(model: LlamaModel, ids: number[], poisonHoles = false): Float32Array[] {
  const out: Float32Array[] = [];
  ids.forEach((id, pos) => {
    out.push(model.forward(id, pos).read());
    if (poisonHoles) poison(model, pos);
  });
  return out;
}

/** Overwrite every cache entry marked as a hole at positions <= pos with NaN. */
function poison(model: LlamaModel, pos: number): void {
  const c = model.config;
  const hs = headSize(c);
  for (let l = 0; l < c.nLayers; l++) {
    const valid = model.cache.valid[l].u8();
    const k = model.cache.keys[l].f32();
    const v = model.cache.values[l].f32();
    for (let g = 0; g < c.nKvHeads; g++) {
      for (let t = 0; t <= pos; t++) {
        if (valid[g * c.seqLen + t]) continue;
        k.fill(NaN, t * kvDim(c) + g * hs, t * kvDim(c) + (g + 1) * hs);
        v.fill(NaN, t * kvDim(c) + g * hs, t * kvDim(c) + (g + 1) * hs);
      }
    }
  }
}

function tinyModel(nHeads: number, nKvHeads: number, hs: number, seed: number): string {
  const config: LlamaConfig = { dim: nHeads * hs, hiddenDim: 24, nLayers: 2, nHeads, nKvHeads, vocabSize: 40, seqLen: 24,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const file = path.join(dir, `tiny-${nHeads}-${nKvHeads}-${hs}-${seed}.bin`);
  writeLlama2cCheckpoint(file, config, (n) => randomTensor(config, n, seed), { version: 0, tied: false });
  return file;
}

test("selectTopHeads keeps the k largest scores, ties to the lowest index, ascending (as the sort it replaces)", () => {
  const idx = new Int32Array(64);
  const order = new Int32Array(64);
  fc.assert(
    fc.property(
      // A coarse grid (ties), with infinities and signed zeros.
      fc.array(fc.oneof(fc.integer({ min: -4, max: 4 }).map((v) => v / 2), fc.constantFrom(Infinity, -Infinity, -0)),
        { minLength: 0, maxLength: 64 }),
      fc.integer({ min: 0, max: 70 }),
      (scores, k) => {
        // Stale scratch must not leak into the result.
        idx.fill(-7);
        order.fill(-7);
        const n = selectTopHeads(Float32Array.from(scores), k, idx, order);
        expect(Array.from(idx.subarray(0, n))).toEqual(selectTopkRef(scores, k));
      },
    ),
    { numRuns: 500 },
  );
});

test("head gate specs parse in one place: every kind, and a clear error otherwise", () => {
  expect(parseHeadGateSpec("dense")).toEqual({ kind: "dense" });
  expect(parseHeadGateSpec("topk:0.5")).toEqual({ kind: "topk", keep: 0.5 });
  expect(parseHeadGateSpec("norm:1")).toEqual({ kind: "norm", keep: 1 });
  expect(parseHeadGateSpec("predictor:a:b.pred")).toEqual({ kind: "predictor", file: "a:b.pred", keep: null });
  expect(parseHeadGateSpec("predictor:h.pred:topk:0.25")).toEqual({ kind: "predictor", file: "h.pred", keep: 0.25 });
  expect(() => parseHeadGateSpec("predictor:h.pred:topk:2")).toThrow(/kept fraction/);
  expect(() => parseHeadGateSpec("predictor:h.pred:topk:abc")).toThrow(/kept fraction/);
  expect(() => parseHeadGateSpec("topk:1.5")).toThrow(/expected dense/);
  expect(() => parseHeadGateSpec("random:0.5")).toThrow(/expected dense/);
  expect(() => topHeadsGate("predictor:h.pred", 8)).toThrow(/buildHeadGate/);
});

test("skip never reads a hole; keep equals mask exactly (random GQA shapes, gates, sequences)", () => {
  let withHoles = 0; // cases whose skip run left holes in the cache (poisoned with NaN, so a read would show)
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(2, 4, 6, 8), fc.nat(50),
      fc.constantFrom("topk", "norm"), fc.double({ min: 0.1, max: 0.9, noNaN: true }),
      fc.array(fc.integer({ min: 3, max: 39 }), { minLength: 4, maxLength: 20 }),
      (nKv, group, hs, seed, kind, keep, ids) => {
        const model = buildModel(openCheckpoint(tinyModel(nKv * group, nKv, hs, seed)), { transposeWo: true });
        const gate = topHeadsGate(`${kind}:${keep}`, model.config.nHeads);
        model.configureHeads(gate, "skip");
        for (const logits of run(model, ids, true)) expect(logits.every(Number.isFinite)).toBe(true);
        if (model.attentionStats.kv_hole_fraction.some((h) => h > 0)) withHoles++;
        model.configureHeads(gate, "keep");
        const keepOut = run(model, ids);
        model.configureHeads(gate, "mask");
        expect(run(model, ids)).toEqual(keepOut);
      },
    ),
    { numRuns: 40 },
  );
  expect(withHoles).toBeGreaterThanOrEqual(10);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))("on stories260K (8 heads, 4 KV heads)", () => {
  const opts = { tokenizer: shared("models/tok512.bin") };
  const rowsModel = loadModel(shared("models/stories260K.bin"), opts).model;
  const model = loadModel(shared("models/stories260K.bin"), { ...opts, transposeWo: true }).model;
  const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338];

  test("keep with no skipped head equals dense; the transposed W_o agrees with the row layout", () => {
    model.configureHeads(null, "keep");
    const dense = run(model, ids);
    model.configureHeads(topHeadsGate("topk:1", 8), "keep");
    expect(run(model, ids)).toEqual(dense);
    const rows = run(rowsModel, ids);
    // The two layouts sum W_o's products in different orders: f32 rounding only.
    rows.forEach((r, i) => r.forEach((v, j) => expect(Math.abs(v - dense[i][j])).toBeLessThan(1e-4)));
  });

  test("stats: head activity and KV holes per layer", () => {
    model.configureHeads(topHeadsGate("topk:0.25", 8), "skip");
    run(model, ids);
    const s = model.attentionStats;
    for (const a of s.head_active_fraction) expect(a).toBeCloseTo(2 / 8, 10);
    // 2 of 8 query heads read at most 2 of the 4 KV heads: at least half the KV heads are holes
    for (const h of s.kv_hole_fraction) expect(h).toBeGreaterThanOrEqual(0.5);
    model.configureHeads(topHeadsGate("topk:0.25", 8), "keep");
    run(model, ids);
    for (const h of model.attentionStats.kv_hole_fraction) expect(h).toBe(0);
  });

  test("skip loses information that keep retains: outputs differ, and perplexity-relevant logits stay finite", () => {
    const gate = topHeadsGate("topk:0.5", 8);
    const out: Record<KvPolicy, Float32Array[]> = { keep: [], skip: [], mask: [] };
    for (const policy of ["keep", "skip", "mask"] as const) {
      model.configureHeads(gate, policy);
      out[policy] = run(model, ids, policy === "skip");
    }
    expect(out.mask).toEqual(out.keep);
    expect(out.skip.at(-1)).not.toEqual(out.keep.at(-1));
    for (const l of out.skip) expect(l.every(Number.isFinite)).toBe(true);
  });

  test("a head gate without the transposed W_o is refused", () => {
    expect(() => rowsModel.configureHeads(topHeadsGate("topk:0.5", 8), "keep")).toThrow(/transposeWo/);
  });
});
