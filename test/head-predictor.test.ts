// Trained head predictors: they fit on stories260K traces, choose heads from the block input (so keep and mask
// still give identical outputs and skip still never reads a hole), and the two predictor kinds refuse each other.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { headSize, kvDim } from "../models/config";
import { buildHeadGate, buildNeuronGate, headGateBytes } from "../eval/gate-factory";
import { fitHeadPredictors } from "../eval/predictor/fit-heads";
import { readTextTokens } from "../eval/text";
import { writePredictor } from "../models/gates/predictor-file";
import { parseGateSpec } from "../models/gates/spec";
import type { LlamaModel } from "../models/llama";
import { loadModel } from "../models/load";
import { haveAssets, shared } from "./assets";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-hp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(model: LlamaModel, ids: number[], poison = false): Float32Array[] {
  const c = model.config;
  return ids.map((id, pos) => {
    const out = model.forward(id, pos).read();
    if (poison) {
      for (let l = 0; l < c.nLayers; l++) {
        const valid = model.cache.valid[l].u8();
        for (let g = 0; g < c.nKvHeads; g++) {
          if (valid[g * c.seqLen + pos]) continue;
          const at = pos * kvDim(c) + g * headSize(c);
          model.cache.keys[l].f32().fill(NaN, at, at + headSize(c));
          model.cache.values[l].f32().fill(NaN, at, at + headSize(c));
        }
      }
    }
    return out;
  });
}

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("head predictors on stories260K", () => {
  const opts = { tokenizer: shared("models/tok512.bin"), transposeWo: true };
  const fitter = loadModel(shared("models/stories260K.bin"), opts);
  const ids = readTextTokens(shared("data/tinystories_val.txt"), fitter.tokenizer, 2048);
  const file = path.join(dir, "heads.pred");
  const p = fitHeadPredictors(fitter.model, ids.slice(1024), { keep: 0.5, rank: 8, sigma: "relu", maxSamples: 512, train: { epochs: 5 } });
  writePredictor(file, p);
  const { model } = loadModel(shared("models/stories260K.bin"), { ...opts, reserveBytes: headGateBytes(`predictor:${file}`) });
  const gate = buildHeadGate(`predictor:${file}`, model);
  const seq = ids.slice(0, 40);

  test("the file reports per-layer held-out metrics for half of the heads", () => {
    expect(p.header.units).toBe("heads");
    expect(p.header.hidden).toBe(8);
    for (const m of p.header.metrics) {
      expect(m.oracle_sparsity).toBeCloseTo(0.5, 6);
      expect(m.recall).toBeGreaterThan(0.5); // better than chance on real traces (not a tuned target)
    }
  });

  test("keep equals mask exactly; skip never reads a hole; half the heads run", () => {
    model.configureHeads(gate, "keep");
    const keep = run(model, seq);
    expect(model.attentionStats.head_active_fraction.every((a) => a === 0.5)).toBe(true);
    model.configureHeads(gate, "mask");
    expect(run(model, seq)).toEqual(keep);
    model.configureHeads(gate, "skip");
    for (const l of run(model, seq, true)) expect(l.every(Number.isFinite)).toBe(true);
    model.configureHeads(null, "keep");
  });

  test("gates built again from the same file share its tensors (one reservation serves them all)", () => {
    buildHeadGate(`predictor:${file}:topk:0.5`, model);
    const used = model.engine.arena.used; // the predictor's tensors are in the engine now
    for (const keep of [0.25, 0.5, 0.75, 1]) buildHeadGate(`predictor:${file}:topk:${keep}`, model);
    expect(model.engine.arena.used).toBe(used); // and no second copy was allocated
  });

  test("neuron and head predictor files refuse each other's flag", () => {
    expect(() => buildNeuronGate(parseGateSpec(`predictor:${file}`), model)).toThrow(/head predictor/);
    expect(() => buildHeadGate(`predictor:${file}:topk:2`, model)).toThrow(/kept fraction/);
  });
});
