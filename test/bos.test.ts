// Every eval entry point starts its windows from the tokenizer's BOS without being told: the model loadModel builds
// carries it (model.bosId). They used to take an optional `bos` that defaulted to 1, so a caller that forgot to pass
// tokenizer.bosId scored and calibrated a LLaMA-3-style vocabulary (BOS 128000) after token 1. The model here has a
// byte-level vocabulary whose BOS is 267.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test, vi } from "vitest";
import { DynactError } from "../engine/errors";
import { calibrate } from "../eval/calibrate";
import { buildTeal } from "../eval/gate-factory";
import { perplexity } from "../eval/perplexity";
import { fitHeadPredictors } from "../eval/predictor/fit-heads";
import { fitPredictors } from "../eval/predictor/fit";
import { compareModels, quantReport } from "../eval/quant-report";
import { readTextTokens } from "../eval/text";
import { parseGateSpec } from "../models/gates/spec";
import type { LlamaModel } from "../models/llama";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { byteLevelModel } from "./byte-level-vocab";
import { dynact } from "./cli-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-bos-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The token each sequence `run` runs on `model` starts from (the one it feeds at position 0). */
function startTokens(model: LlamaModel, run: () => unknown): number[] {
  const forward = vi.spyOn(model, "forward");
  const batch = vi.spyOn(model, "forwardBatch");
  try {
    run();
    return [
      ...forward.mock.calls.filter(([, pos]) => pos === 0).map(([token]) => token),
      ...batch.mock.calls.filter(([, pos]) => pos === 0).map(([tokens]) => tokens[0]!),
    ];
  } finally {
    forward.mockRestore();
    batch.mockRestore();
  }
}

describe("a model whose BOS is not 1 (a byte-level vocabulary: BOS 267)", () => {
  const { model, text } = byteLevelModel(dir, "bos267", 12);
  const loaded = loadModel(model);
  const ids = readTextTokens(text, loaded.tokenizer);
  // Several windows of the model's 40 positions.
  const expectFromBos = (starts: number[]) => {
    expect(starts.length).toBeGreaterThan(2);
    expect(new Set(starts)).toEqual(new Set([267]));
  };

  test("the loaded model carries its tokenizer's BOS", () => {
    expect(loaded.tokenizer.bosId).toBe(267);
    expect(loaded.model.bosId).toBe(267);
  });

  test("perplexity, given the model alone or the loaded model", () => {
    expectFromBos(startTokens(loaded.model, () => perplexity(loaded.model, ids)));
    expectFromBos(startTokens(loaded.model, () => perplexity(loaded, ids)));
  });

  test("calibrate and TEAL's calibration", () => {
    expectFromBos(startTokens(loaded.model, () => calibrate(loaded.model, ids, { kind: "cats", sparsity: 0.5 })));
    expectFromBos(startTokens(loaded.model, () => buildTeal(parseGateSpec("teal:0.5"), loaded.model, { calibrationIds: () => ids })));
  });

  test("the predictor fitters' tracing (neurons, cett labels calibrated first; heads)", () => {
    const train = { epochs: 1 };
    expectFromBos(startTokens(loaded.model, () =>
      fitPredictors(loaded.model, ids, { label: { kind: "cett", target: 0.2 }, rank: 2, sigma: "relu", lookahead: false, train })));
    const heads = loadModel(model, { transposeWo: true });
    expectFromBos(startTokens(heads.model, () => fitHeadPredictors(heads.model, ids, { keep: 0.5, rank: 2, sigma: "relu", train })));
  });

  test("compareModels: the reference and every candidate", () => {
    const candidate = loadModel(model).model;
    const starts = { ref: [] as number[], cand: [] as number[] };
    starts.ref = startTokens(loaded.model, () => (starts.cand = startTokens(candidate, () => compareModels(loaded.model, [candidate], ids))));
    expectFromBos(starts.ref);
    expectFromBos(starts.cand);
  });

  test("the BOS matters, and the CLI's calibrate gives the library's thresholds", () => {
    const spec = { kind: "cats", sparsity: 0.5 } as const;
    const c = calibrate(loaded.model, ids, spec);
    expect(c.thresholds).not.toEqual(calibrate(buildModel(openCheckpoint(model), { bosId: 1 }), ids, spec).thresholds);
    const out = path.join(dir, "bos267.json");
    const r = dynact("calibrate", "-m", model, "-d", text, "--ffn-gate", "cats:0.5", "-o", out, "--threads", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).thresholds).toEqual(c.thresholds);
  });

  test("a model built without a BOS says so when scored, instead of taking 1; a BOS outside the vocabulary is refused", () => {
    const bare = buildModel(openCheckpoint(model));
    expect(() => perplexity(bare, ids)).toThrow(new DynactError(
      "this model has no BOS id: load it with loadModel (its tokenizer's) or build it with buildModel(checkpoint, { bosId })"));
    expect(() => buildModel(openCheckpoint(model), { bosId: 269 })).toThrow(new DynactError("BOS 269 outside the vocabulary of 269"));
    // Candidates scored from another BOS than the reference's would not be comparable.
    expect(() => compareModels(loaded.model, [buildModel(openCheckpoint(model), { bosId: 1 })], ids))
      .toThrow(new DynactError("BOS ids differ: 267 and 1"));
    // quantReport builds its models from a checkpoint, which has no tokenizer: it is told the BOS, and uses it.
    const r = quantReport(openCheckpoint(model), ids.slice(0, 60), { dtypes: ["f16"], bosId: 267 });
    expect(r.reference.mean_nll).toBeCloseTo(perplexity(loaded, ids.slice(0, 60)).mean_nll, 12);
  });
});
