// Oracle label rules, predictor gate specs and the predictor file format (without a model; the stories260K suite
// covers model binding).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { selectThresholdRef, selectTopkRef } from "../engine/reference";
import { formatLabelRule, Labeler, parseLabelRule } from "../models/gates/label-rule";
import { layerValues, readPredictorHeader, writePredictor, type PredictorHeader } from "../models/gates/predictor-file";
import { predictorBytes } from "../models/gates/predictor-gate";
import { formatGateSpec, parseGateSpec } from "../models/gates/spec";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-predictor-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const setOf = (mask: Uint8Array) => Array.from(mask.keys()).filter((i) => mask[i] === 1);

describe("label rules", () => {
  const h = 37;
  // Values on a coarse grid so that ties and exact zeros occur.
  const acts = fc.array(fc.integer({ min: -6, max: 6 }).map((v) => v / 4), { minLength: h, maxLength: h }).map((a) => Float32Array.from(a));

  test("topk:F keeps round(F·h) neurons by |act(g)|, ties to the lowest id (as the top-k gate)", () => {
    fc.assert(fc.property(acts, fc.integer({ min: 1, max: 100 }), (g, pct) => {
      const keep = pct / 100;
      const out = new Uint8Array(h);
      const n = new Labeler({ kind: "topk", keep }, h).label(0, g, g, out);
      expect(n).toBe(Math.round(keep * h));
      expect(setOf(out)).toEqual(selectTopkRef(g.map(Math.abs), Math.round(keep * h)));
    }), { numRuns: 200 });
  });

  test("cett:T keeps f32(|act(g)|·‖W_down[:,i]‖) > ε_l (as the threshold gate); ε = -∞ keeps all", () => {
    fc.assert(fc.property(acts, acts, fc.integer({ min: 0, max: 8 }).map((v) => v / 8), (g, norms, eps) => {
      const n = Float32Array.from(norms, Math.abs);
      const labeler = new Labeler({ kind: "cett", target: 0.2 }, h, [eps, -Infinity], [n, n]);
      const out = new Uint8Array(h);
      labeler.label(0, g, g, out);
      expect(setOf(out)).toEqual(selectThresholdRef(Float32Array.from(g, (v, i) => Math.abs(v) * n[i]), eps));
      expect(labeler.label(1, g, g, out)).toBe(h);
    }), { numRuns: 200 });
  });

  test("relu keeps the nonzero activations act(g)·u", () => {
    const out = new Uint8Array(4);
    expect(new Labeler({ kind: "relu" }, 4).label(0, Float32Array.from([0, 1, 2, 0]), Float32Array.from([5, 0, 1, 0]), out)).toBe(1);
    expect(Array.from(out)).toEqual([0, 0, 1, 0]);
  });

  test("parse and format round-trip; bad rules are errors", () => {
    for (const s of ["relu", "topk:0.5", "cett:0.2", "cett:0"]) expect(formatLabelRule(parseLabelRule(s))).toBe(s);
    for (const s of ["relu:1", "topk:0", "topk:1.5", "cett:", "cett:x", "cats:0.5", "topk:0.5:1"]) {
      expect(() => parseLabelRule(s)).toThrow(/label rule/);
    }
    expect(() => new Labeler({ kind: "cett", target: 0.2 }, 4)).toThrow(/thresholds/);
  });
});

describe("predictor gate specs", () => {
  test("predictor:FILE and predictor:FILE:topk:F (file names may hold colons)", () => {
    expect(parseGateSpec("predictor:p.pred")).toEqual({ kind: "predictor", file: "p.pred", keep: null });
    expect(parseGateSpec("predictor:C:/x/p.pred:topk:0.3")).toEqual({ kind: "predictor", file: "C:/x/p.pred", keep: 0.3 });
    for (const s of ["predictor:p.pred", "predictor:a:b:topk:0.25"]) expect(formatGateSpec(parseGateSpec(s))).toBe(s);
    expect(() => parseGateSpec("predictor")).toThrow(/predictor file/);
    expect(() => parseGateSpec("predictor:p.pred:topk:0")).toThrow(/kept fraction/);
    expect(() => parseGateSpec("predictor:p.pred:topk:")).toThrow(/kept fraction/);
  });
});

describe("predictor files", () => {
  const header: PredictorHeader = {
    format: "dynact-predictor", version: 1, model_fingerprint: "f".repeat(32), text_fingerprint: "t".repeat(32),
    label: "cett:0.2", label_thresholds: [0.5, null], activation: "silu", sigma: "relu", rank: 3, dim: 5, hidden: 7, layers: 2,
    lookahead: false, tokens: 10, training: { epochs: 1 },
    metrics: [0, 1].map(() => ({ recall: 1, precision: 1, f1: 1, predicted_sparsity: 0, oracle_sparsity: 0, held_out_loss: 0, epochs: 1 })),
  };
  const weights = [0, 1].map((l) => Float32Array.from({ length: layerValues(header) }, (_, i) => l + i / 100));
  const file = path.join(dir, "p.pred");
  writePredictor(file, { header, weights });

  test("header round trip; the weights start 4-byte aligned after one JSON line", () => {
    expect(readPredictorHeader(file)).toEqual(header);
    const buf = readFileSync(file);
    const start = buf.indexOf(10) + 1;
    expect(start % 4).toBe(0);
    expect(new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length))).toEqual(
      Float32Array.from([...weights[0], ...weights[1]]));
  });

  test("engine bytes cover the per-layer tensors and the scratch", () => {
    // 2 layers of 3·5 + 3 + 7·3 + 7 values, scratch 3 + 2·7, 64 bytes of alignment per tensor
    expect(predictorBytes(header)).toBe(4 * (2 * 46 + 17) + 64 * 11);
  });

  test("damaged files are refused with the reason", () => {
    const bad = (name: string, content: Buffer | string) => {
      const f = path.join(dir, name);
      writeFileSync(f, content);
      return () => readPredictorHeader(f);
    };
    const full = readFileSync(file);
    expect(bad("short", full.subarray(0, full.length - 4))).toThrow(/bytes of weights/);
    expect(bad("json", "{oops\n")).toThrow(/not a dynact predictor file/);
    expect(bad("line", "no newline")).toThrow(/no header line/);
    expect(bad("other", `${JSON.stringify({ ...header, format: "x" })}\n`)).toThrow(/wrong format/);
    expect(bad("rank", `${JSON.stringify({ ...header, rank: 0 })}\n`)).toThrow(/positive integers/);
    expect(bad("thresholds", `${JSON.stringify({ ...header, label_thresholds: null })}\n`)).toThrow(/thresholds/);
    expect(() => readPredictorHeader(path.join(dir, "missing"))).toThrow(/no such file/);
  });
});
