// Predictors fitted on stories260K traces: they load into the model's engine and run in mask and gather mode with
// the same perplexity, their cost is counted, their accuracy against the oracle set is reported in the FFN stats,
// and a predictor file is refused by another model. Tiny predictors (rank 8, a few epochs) keep this quick; the
// accuracy numbers are printed, not asserted.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { buildNeuronGate, gateBytes } from "../eval/gate-factory";
import { perplexity } from "../eval/perplexity";
import { fitPredictors } from "../eval/predictor/fit";
import { readTextTokens } from "../eval/text";
import { parseLabelRule } from "../models/gates/label-rule";
import { predictorMacs, readPredictorHeader, writePredictor } from "../models/gates/predictor-file";
import { parseGateSpec } from "../models/gates/spec";
import { loadModel } from "../models/load";
import { haveAssets, shared } from "./assets";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-predictors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("predictors on stories260K", () => {
  const model = shared("models/stories260K.bin");
  const tokenizer = shared("models/tok512.bin");
  const base = loadModel(model, { tokenizer });
  const text = readTextTokens(shared("data/tinystories_val.txt"), base.tokenizer, 2048 + 300);
  const trainIds = text.slice(0, 2048);
  const evalIds = text.slice(2048); // held out from the traces
  const train = { epochs: 4 };

  const fitted = (label: string, lookahead: boolean) => {
    const p = fitPredictors(base.model, trainIds, { label: parseLabelRule(label), rank: 8, sigma: "relu", lookahead, train });
    const file = path.join(dir, `${label.replace(":", "_")}${lookahead ? "-ahead" : ""}.pred`);
    writePredictor(file, p);
    const m = p.header.metrics;
    console.log(`${label}${lookahead ? " lookahead" : ""} rank 8, held-out: recall ${m.map((x) => x.recall.toFixed(3)).join(" ")}; ` +
      `precision ${m.map((x) => x.precision.toFixed(3)).join(" ")}; sparsity ${m.map((x) => x.predicted_sparsity.toFixed(2)).join(" ")} ` +
      `(oracle ${m.map((x) => x.oracle_sparsity.toFixed(2)).join(" ")})`);
    return file;
  };

  for (const [label, lookahead] of [["cett:0.2", false], ["topk:0.5", true]] as const) {
    test(`${label}${lookahead ? " (lookahead)" : ""}: gather equals mask in perplexity (1e-4); cost and accuracy in the stats`, () => {
      const file = fitted(label, lookahead);
      const h = readPredictorHeader(file);
      expect(h.metrics.every((m) => m.recall >= 0 && m.recall <= 1 && m.precision >= 0 && m.precision <= 1)).toBe(true);
      for (const spec of [`predictor:${file}`, `predictor:${file}:topk:0.3`]) {
        const run = (mode: "mask" | "gather") => {
          const g = parseGateSpec(spec);
          const loaded = loadModel(model, { tokenizer, transposeDown: mode === "gather", reserveBytes: gateBytes(g) });
          loaded.model.configureFfn({ gate: buildNeuronGate(g, loaded.model), mode });
          return { nll: perplexity(loaded.model, evalIds, { ctx: 128 }).mean_nll, stats: loaded.model.ffnStats.summary() };
        };
        const mask = run("mask");
        const gather = run("gather");
        expect(Math.abs(mask.nll - gather.nll)).toBeLessThan(1e-4);

        const { dim, hiddenDim, nLayers } = base.model.config;
        const perLayer = predictorMacs(h) / (3 * dim * hiddenDim);
        // A lookahead predictor for layer l+1 runs while layer l does; layer 0 also predicts its own set.
        const expected = (l: number) => (lookahead ? perLayer * ((l === 0 ? 1 : 0) + (l + 1 < nLayers ? 1 : 0)) : perLayer);
        gather.stats.gate_mac_fraction.forEach((m, l) => expect(m).toBeCloseTo(expected(l), 12));
        gather.stats.ffn_mac_fraction.forEach((m, l) => expect(m).toBeCloseTo(gather.stats.active_fraction[l] + expected(l), 12));
        if (spec.endsWith("topk:0.3")) for (const a of gather.stats.active_fraction) expect(a).toBeCloseTo(Math.round(0.3 * hiddenDim) / hiddenDim, 12);
        expect(gather.stats.oracle).toBeUndefined(); // the oracle needs the dense activations of mask mode

        const o = mask.stats.oracle!;
        console.log(`${spec.slice(spec.lastIndexOf("/") + 1)} in mask mode (${evalIds.length} held-out tokens): perplexity ` +
          `${Math.exp(mask.nll).toFixed(3)}; recall ${o.recall.map((x) => x.toFixed(3)).join(" ")}; precision ` +
          `${o.precision.map((x) => x.toFixed(3)).join(" ")}; oracle active ${o.active_fraction.map((x) => x.toFixed(2)).join(" ")}`);
        for (const k of ["recall", "precision", "active_fraction"] as const) {
          expect(o[k]).toHaveLength(nLayers);
          for (const v of o[k]) {
            expect(v).toBeGreaterThanOrEqual(0);
            expect(v).toBeLessThanOrEqual(1);
          }
        }
        if (label === "topk:0.5") for (const a of o.active_fraction) expect(a).toBeCloseTo(Math.round(0.5 * hiddenDim) / hiddenDim, 12);
      }
    });
  }

  test("a predictor file is refused by another model (here: the same weights with ReLU swapped in)", () => {
    const p = fitPredictors(base.model, trainIds.slice(0, 256), { label: parseLabelRule("topk:0.5"), rank: 2, sigma: "identity",
      lookahead: false, train: { epochs: 1 } });
    const file = path.join(dir, "other.pred");
    writePredictor(file, p);
    const spec = parseGateSpec(`predictor:${file}`);
    const other = loadModel(model, { tokenizer, activation: "relu", reserveBytes: gateBytes(spec) });
    expect(() => buildNeuronGate(spec, other.model)).toThrow(/fitted for another model/);
    expect(buildNeuronGate(spec, loadModel(model, { tokenizer, reserveBytes: gateBytes(spec) }).model)).not.toBeNull();
  });

  test("relu labels need a ReLU-family activation", () => {
    expect(() => fitPredictors(base.model, trainIds, { label: { kind: "relu" }, rank: 2, sigma: "relu", lookahead: false }))
      .toThrow(/ReLU-family/);
  });
});
