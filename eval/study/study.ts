// The study runner: every cell of the matrix on every model — perplexity on evaluation tokens, zero-shot task
// accuracy, per-layer sparsity and CETT, head activity and KV holes, FLOP fraction, and measured decode speed.
// Accuracy runs in mask mode (the reference); speed runs the real sparse kernels (gather, keep/skip). Cells are
// cached on disk by a key over the cell, the model and the text, so an interrupted study resumes where it stopped.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { DynactError } from "../../engine/errors";
import { brief, FormatError, isObject } from "../../models/formats/format-error";
import { argmax } from "../../engine/ops/argmax";
import type { AttentionStatsSummary } from "../../models/attention";
import type { FfnStatsSummary } from "../../models/ffn-stats";
import { modelFingerprint, textFingerprint, writeCalibration } from "../../models/gates/calibration";
import { parseGateSpec, type GateSpec } from "../../models/gates/spec";
import type { LlamaModel } from "../../models/llama";
import { loadModel, type LoadedModel } from "../../models/load";
import { calibrate } from "../calibrate";
import { buildHeadGate, buildNeuronGate, buildTeal, gateBytes, headGateBytes } from "../gate-factory";
import { fitHeadPredictors } from "../predictor/fit-heads";
import { fitPredictors } from "../predictor/fit";
import type { LabelRule } from "../../models/gates/label-rule";
import { writePredictor } from "../../models/gates/predictor-file";
import { evaluate } from "../multiple-choice";
import { perplexity } from "../perplexity";
import { readTask, type McTask } from "../tasks";
import { readTextTokens } from "../text";
import { cellLabel, studyMatrix, type CellSpec } from "./matrix";

export interface StudyOptions {
  models: string[];
  tokenizer?: string;
  text: string;
  tasks: string[];
  outDir: string;
  quick: boolean;
  /** Evaluation tokens (the first N of the text); calibration uses the N after them. */
  maxTokens?: number;
  ctx?: number;
  /** Task items per task. */
  limit?: number;
  /** Decode positions per speed measurement. */
  speedSteps?: number;
  onProgress?: (done: number, total: number, etaSeconds: number, label: string) => void;
  log?: (line: string) => void;
}

export interface CellResult extends CellSpec {
  label: string;
  perplexity: number;
  mean_nll: number;
  tokens: number;
  tasks: { task: string; n: number; acc: number; acc_norm: number }[];
  ffn: FfnStatsSummary;
  attention: AttentionStatsSummary;
  /** Mean active neuron fraction over layers (mask-mode accuracy run). */
  active_mean: number;
  head_active_mean: number;
  /** Fraction of the FFN's dense multiply-adds done on the sparse path (speed run), mean over layers. */
  mac_fraction: number;
  decode_tokens_per_second: number;
  seconds: number;
}

export interface ModelSummary {
  path: string;
  label: string;
  activation: string;
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kv_heads: number;
  /** Fraction of exact zeros of act(W_gate x) per layer over the evaluation tokens (dense). */
  zero_fraction: number[];
}

export interface StudyResult {
  created: string;
  options: { quick: boolean; eval_tokens: number; calibration_tokens: number; ctx: number; limit: number; speed_steps: number; text: string; tasks: string[] };
  models: ModelSummary[];
  cells: CellResult[];
}

export async function study(o: StudyOptions): Promise<StudyResult> {
  const log = o.log ?? (() => {});
  const evalTokens = o.maxTokens ?? (o.quick ? 1024 : 4096);
  const limit = o.limit ?? (o.quick ? 20 : 200);
  const speedSteps = o.speedSteps ?? (o.quick ? 32 : 64);
  const tasks: McTask[] = o.tasks.map(readTask);
  const predictorFiles = new Map(o.models.map((m, i) => [m, path.join(o.outDir, "predictors", `${i}-${path.basename(m)}.pred`)]));
  const headFiles = new Map(o.models.map((m, i) => [m, path.join(o.outDir, "predictors", `${i}-${path.basename(m)}.heads.pred`)]));
  const cells = studyMatrix(o.models, { quick: o.quick, predictors: predictorFiles, headPredictors: headFiles });
  const results: CellResult[] = [];
  const models: ModelSummary[] = [];
  let done = 0;
  const started = performance.now();
  let ctxUsed = 0;
  let calibCount = 0;
  for (const file of o.models) {
    const rows = loadModel(file, { tokenizer: o.tokenizer });
    const ctx = Math.min(o.ctx ?? rows.model.config.seqLen, rows.model.config.seqLen);
    ctxUsed = ctx;
    const ids = readTextTokens(o.text, rows.tokenizer, 2 * evalTokens);
    // Made once the tasks, the first model and the text have been read: a mistyped path leaves no empty folder.
    for (const sub of ["cells", "calibration", "predictors"]) mkdirSync(path.join(o.outDir, sub), { recursive: true });
    const evalIds = ids.slice(0, evalTokens);
    const calibIds = ids.slice(evalTokens);
    if (calibIds.length === 0) {
      // Said here: the predictor fit would only report "no calibration tokens".
      throw new DynactError(`${o.text}: its ${ids.length} tokens leave none to calibrate on after the ${evalTokens} evaluation tokens (--max-tokens)`);
    }
    // The predictor is fitted on the calibration tokens first: the gate's tensors are reserved when the sparse
    // instance is loaded.
    const predictorFile = predictorFiles.get(file)!;
    if (!existsSync(predictorFile)) {
      log(`${path.basename(file)}: fitting predictors`);
      const label: LabelRule = rows.model.config.activation === "relu" ? { kind: "relu" } : { kind: "cett", target: 0.2 };
      writePredictor(predictorFile, fitPredictors(rows.model, calibIds, {
        label, rank: o.quick ? 16 : 32, sigma: "relu", lookahead: false, ctx, maxSamples: o.quick ? 1024 : 2048,
      }));
    }
    const headFile = headFiles.get(file)!;
    if (!existsSync(headFile)) {
      log(`${path.basename(file)}: fitting head predictors`);
      const fitter = loadModel(rows.checkpoint, { tokenizer: o.tokenizer, transposeWo: true });
      writePredictor(headFile, fitHeadPredictors(fitter.model, calibIds, {
        keep: 0.5, rank: o.quick ? 16 : 32, sigma: "relu", ctx, maxSamples: o.quick ? 1024 : 2048,
      }));
    }
    const sparse = loadModel(rows.checkpoint, { // the header as read once above
      tokenizer: o.tokenizer, transposeDown: true, transposeWo: true,
      reserveBytes: gateBytes({ kind: "predictor", file: predictorFile, keep: null }) + headGateBytes(`predictor:${headFile}`),
    });
    calibCount = calibIds.length;
    const fingerprint = modelFingerprint(rows.model);
    const base = { text: textFingerprint(evalIds), calib: textFingerprint(calibIds), ctx, limit, speedSteps, tasks: o.tasks };
    models.push(summarize(file, rows, zeroFraction(rows.model, evalIds, ctx)));
    for (const cell of cells.filter((c) => c.model === file)) {
      const key = createHash("sha256").update(JSON.stringify({ cell, fingerprint, base, v: 1 })).digest("hex").slice(0, 24);
      const cached = path.join(o.outDir, "cells", `${key}.json`);
      let result: CellResult;
      if (existsSync(cached)) {
        result = readCachedCell(cached, cell, rows.model.config.nLayers, o.tasks.length);
      } else {
        const t0 = performance.now();
        const gateFile = calibrationFile(o.outDir, fingerprint, cell.ffnGate);
        result = runCell(cell, rows, sparse, { evalIds, calibIds, ctx, tasks, limit, speedSteps, gateFile, log });
        result.seconds = (performance.now() - t0) / 1000;
        writeFileSync(`${cached}.tmp`, JSON.stringify(result));
        renameSync(`${cached}.tmp`, cached);
      }
      results.push(result);
      done++;
      const elapsed = (performance.now() - started) / 1000;
      o.onProgress?.(done, cells.length, (elapsed / done) * (cells.length - done), `${path.basename(file)} ${result.label}`);
    }
  }
  return {
    created: new Date().toISOString(),
    options: { quick: o.quick, eval_tokens: evalTokens, calibration_tokens: calibCount, ctx: ctxUsed, limit, speed_steps: speedSteps, text: o.text, tasks: o.tasks },
    models, cells: results,
  };
}

/**
 * A cell's result as an earlier run cached it, checked to be the result of this cell for this model and tasks: the
 * report reads every field, so a truncated, edited or foreign file was an internal error (a SyntaxError, or a
 * TypeError reading a field) instead of a FormatError naming the file and the field.
 */
export function readCachedCell(file: string, cell: CellSpec, nLayers: number, tasks: number): CellResult {
  const bad = (field: string, detail: string) => new FormatError(file, field, `${detail} (a cached study cell: delete it to run the cell again)`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw bad("json", (e as Error).message);
  }
  const object = (v: unknown, field: string): Record<string, unknown> => {
    if (!isObject(v)) throw bad(field, `${brief(v)} is not an object`);
    return v;
  };
  // JSON writes a non-finite measurement (an infinite perplexity) as null.
  const measure = (v: unknown, field: string) => {
    if (typeof v !== "number" && v !== null) throw bad(field, `${brief(v)} is not a number`);
  };
  const perLayer = (v: unknown, field: string) => {
    if (!Array.isArray(v) || v.length !== nLayers) throw bad(field, `${brief(v)} is not ${nLayers} per-layer values`);
    v.forEach((x, l) => measure(x, `${field}[${l}]`));
  };
  const count = (v: unknown, field: string) => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(field, `${brief(v)} is not a count`);
  };
  const r = object(json, "json");
  for (const [key, want] of Object.entries(cell)) {
    if (r[key] !== want) throw bad(key, `${r[key] === undefined ? "missing" : brief(r[key])}, but the cell is ${brief(want)}`);
  }
  if (typeof r.label !== "string") throw bad("label", `${brief(r.label)} is not a string`);
  count(r.tokens, "tokens");
  for (const key of ["perplexity", "mean_nll", "active_mean", "head_active_mean", "mac_fraction", "decode_tokens_per_second", "seconds"]) {
    measure(r[key], key);
  }
  if (!Array.isArray(r.tasks) || r.tasks.length !== tasks) throw bad("tasks", `${brief(r.tasks)} is not the results of ${tasks} tasks`);
  r.tasks.forEach((t, i) => {
    const task = object(t, `tasks[${i}]`);
    if (typeof task.task !== "string") throw bad(`tasks[${i}].task`, `${brief(task.task)} is not a string`);
    count(task.n, `tasks[${i}].n`);
    for (const key of ["acc", "acc_norm"]) measure(task[key], `tasks[${i}].${key}`);
  });
  const ffn = object(r.ffn, "ffn");
  count(ffn.tokens, "ffn.tokens");
  for (const key of ["active_fraction", "cett", "ffn_mac_fraction", "gate_mac_fraction"]) perLayer(ffn[key], `ffn.${key}`);
  if (ffn.oracle !== undefined) {
    const oracle = object(ffn.oracle, "ffn.oracle");
    for (const key of ["recall", "precision", "active_fraction"]) perLayer(oracle[key], `ffn.oracle.${key}`);
  }
  const attention = object(r.attention, "attention");
  count(attention.tokens, "attention.tokens");
  for (const key of ["head_active_fraction", "kv_hole_fraction", "proj_mac_fraction"]) perLayer(attention[key], `attention.${key}`);
  return r as unknown as CellResult;
}

interface CellContext {
  evalIds: number[];
  calibIds: number[];
  ctx: number;
  tasks: McTask[];
  limit: number;
  speedSteps: number;
  gateFile: string;
  log: (line: string) => void;
}

function runCell(cell: CellSpec, rows: LoadedModel, sparse: LoadedModel, c: CellContext): CellResult {
  const spec = parseGateSpec(cell.ffnGate);
  const model = sparse.model;
  const promptLength = spec.kind === "griffin" || spec.kind === "tda" ? Math.floor((c.ctx - 1) / 2) : 0;
  const heads = buildHeadGate(cell.headGate, model);
  const dense = cell.family === "dense";
  // One gate for both runs (a predictor's tensors are allocated once, in the reserved engine bytes).
  const gate = dense ? null : buildNeuronGate(calibrated(spec, model, c), model);
  model.configureTeal(buildTeal(spec, model, { calibrationIds: () => c.calibIds, ctx: c.ctx }));
  // Accuracy: mask mode (heads: the policy itself — keep and mask give identical outputs; skip loses the holes).
  const acc = dense ? rows.model : model;
  acc.configureFfn({ gate, mode: "mask", measureCett: !dense });
  if (!dense) acc.configureHeads(heads, cell.kvPolicy);
  const ppl = perplexity(acc, c.evalIds, { ctx: c.ctx, promptLength });
  const ffn = acc.ffnStats.summary();
  const attention = acc.attentionStats;
  const taskResults = c.tasks.map((t) => {
    const r = evaluate({ model: acc, tokenizer: rows.tokenizer }, t, { limit: c.limit });
    return { task: r.task, n: r.n, acc: r.acc, acc_norm: r.acc_norm };
  });
  // Speed: the real sparse path.
  const speed = dense ? rows.model : model;
  speed.configureFfn({ gate, mode: dense ? "mask" : "gather" });
  if (!dense) speed.configureHeads(heads, cell.kvPolicy);
  const tps = decodeSpeed(speed, c.speedSteps, promptLength > 0);
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
  const macFraction = mean(speed.ffnStats.summary().ffn_mac_fraction);
  return {
    ...cell, label: cellLabel(cell), perplexity: ppl.perplexity, mean_nll: ppl.mean_nll, tokens: ppl.tokens, tasks: taskResults,
    ffn, attention, active_mean: mean(ffn.active_fraction), head_active_mean: mean(attention.head_active_fraction),
    mac_fraction: macFraction, decode_tokens_per_second: tps, seconds: 0,
  };
}

/** cats/cett gates are calibrated once per model on the calibration tokens and read back from their file. */
function calibrated(spec: GateSpec, model: LlamaModel, c: CellContext): GateSpec {
  if (spec.kind !== "cats" && spec.kind !== "cett" && spec.kind !== "cett-global") return spec;
  const file = c.gateFile;
  if (!existsSync(file)) {
    c.log(`calibrating ${spec.kind}:${spec.kind === "cats" ? spec.sparsity : spec.target}`);
    writeCalibration(file, calibrate(model, c.calibIds, spec, { ctx: c.ctx }));
  }
  return { kind: "threshold", file };
}

function calibrationFile(dir: string, fingerprint: string, gate: string): string {
  return path.join(dir, "calibration", `${fingerprint.slice(0, 12)}-${gate.replace(/[^a-z0-9.]/gi, "_")}.json`);
}

/** Greedy decode from the model's BOS; tokens/s after the first token. Prompt-based gates: the first half is the prompt. */
function decodeSpeed(model: LlamaModel, steps: number, promptHalf: boolean): number {
  const n = Math.min(steps, model.config.seqLen);
  const prompt = promptHalf ? Math.floor(n / 2) : 1;
  model.beginSequence();
  let token = model.bosId;
  let start = 0;
  for (let pos = 0; pos < n; pos++) {
    if (pos === prompt) {
      model.beginGeneration();
      start = performance.now();
    }
    token = argmax(model.forward(token, pos));
  }
  return (n - prompt) / ((performance.now() - start) / 1000);
}

/** Fraction of exact zeros of act(W_gate x) per layer over the evaluation tokens, dense. */
function zeroFraction(model: LlamaModel, ids: number[], ctx: number): number[] {
  const zeros = new Array<number>(model.config.nLayers).fill(0);
  const seen = new Array<number>(model.config.nLayers).fill(0);
  model.configureFfn({ gate: null, mode: "mask" });
  model.traceFfn((l, g) => {
    const v = g.f32();
    let z = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === 0) z++;
    zeros[l] += z;
    seen[l] += v.length;
  });
  try {
    perplexity(model, ids, { ctx });
  } finally {
    model.traceFfn(null);
  }
  return zeros.map((z, l) => z / seen[l]);
}

function summarize(file: string, loaded: LoadedModel, zero: number[]): ModelSummary {
  const c = loaded.model.config;
  return {
    path: file, label: path.basename(file), activation: c.activation, dim: c.dim, hidden: c.hiddenDim, layers: c.nLayers,
    heads: c.nHeads, kv_heads: c.nKvHeads, zero_fraction: zero,
  };
}
