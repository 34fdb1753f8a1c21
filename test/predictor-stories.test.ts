// Predictors fitted on stories260K traces: they load into the model's engine and run in mask and gather mode with
// the same perplexity, their cost is counted, their accuracy against the oracle set is reported in the FFN stats,
// and a predictor file is refused by another model. Tiny predictors (rank 8, a few epochs) keep this quick; the
// accuracy numbers are printed, not asserted.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { buildHeadGate, buildNeuronGate, gateBytes, headGateBytes } from "../eval/gate-factory";
import { perplexity } from "../eval/perplexity";
import { fitPredictors } from "../eval/predictor/fit";
import { readTextTokens } from "../eval/text";
import { parseLabelRule } from "../models/gates/label-rule";
import { FormatError } from "../models/formats/format-error";
import { layerValues, predictorMacs, readPredictorHeader, writePredictor, type Predictor } from "../models/gates/predictor-file";
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

  test("a header whose layers, dim or hidden are not the model's is a FormatError naming the key, though its fingerprint is", () => {
    // Before, a header edited after fitting ran: 2 layers of 5 failed in the gate with a TypeError, 7 ran the first 5,
    // 100 neurons of 172 gated the wrong ones, and other sizes surfaced as a kernel's shape error.
    const p = fitPredictors(base.model, trainIds.slice(0, 256), { label: parseLabelRule("topk:0.5"), rank: 2, sigma: "identity",
      lookahead: false, train: { epochs: 1 } });
    const { nLayers, dim, hiddenDim, nHeads } = base.model.config;
    const forged = (name: string, change: Partial<Predictor["header"]>): string => {
      const header = { ...p.header, ...change };
      header.metrics = Array.from({ length: header.layers }, () => p.header.metrics[0]!);
      const file = path.join(dir, `${name}.pred`);
      writePredictor(file, { header, weights: Array.from({ length: header.layers }, () => new Float32Array(layerValues(header))) });
      return file;
    };
    const refusal = (file: string, build: (m: typeof base.model) => unknown, reserve: number) => {
      const loaded = loadModel(model, { tokenizer, reserveBytes: reserve });
      try {
        build(loaded.model);
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
        expect((e as FormatError).file).toBe(file);
        return (e as FormatError).message;
      }
      return "accepted";
    };
    const neurons = (file: string) => refusal(file, (m) => buildNeuronGate(parseGateSpec(`predictor:${file}`), m), gateBytes(parseGateSpec(`predictor:${file}`)));
    const heads = (file: string) => refusal(file, (m) => buildHeadGate(`predictor:${file}`, m), headGateBytes(`predictor:${file}`));
    expect(neurons(forged("layers2", { layers: 2 }))).toMatch(/: layers: 2, but the model has 5 layers$/);
    expect(neurons(forged("layers7", { layers: nLayers + 2 }))).toMatch(/: layers: 7, but the model has 5 layers$/);
    expect(neurons(forged("hidden100", { hidden: 100 }))).toMatch(new RegExp(`: hidden: 100, but the model's MLP has ${hiddenDim} neurons$`));
    expect(neurons(forged("hidden4096", { hidden: 4096 }))).toMatch(/: hidden: 4096, /);
    expect(neurons(forged("dim32", { dim: dim / 2 }))).toMatch(new RegExp(`: dim: ${dim / 2}, but the model's dim is ${dim}$`));
    expect(heads(forged("heads-layers2", { units: "heads", hidden: nHeads, layers: 2 }))).toMatch(/: layers: 2, but the model has 5 layers$/);
    expect(heads(forged("heads-hidden", { units: "heads", hidden: nHeads + 1 }))).toMatch(new RegExp(`: hidden: ${nHeads + 1}, but the model has ${nHeads} attention heads$`));
    expect(neurons(forged("same", {}))).toBe("accepted");
  });

  test("relu labels need a ReLU-family activation", () => {
    expect(() => fitPredictors(base.model, trainIds, { label: { kind: "relu" }, rank: 2, sigma: "relu", lookahead: false }))
      .toThrow(/ReLU-family/);
  });
});
