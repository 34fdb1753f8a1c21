// What quantization costs: a checkpoint converted to f16 / q8_0 / q4_0 (as `dynact convert --to gguf --dtype`
// writes it) against the checkpoint as stored, teacher-forced on the same text and windows as `dynact perplexity`:
// perplexity and its change, how often the argmax next-token prediction agrees with the reference's, and the mean
// KL divergence KL(p_ref ‖ p_quant) of the next-token distributions. Reference and candidate run in lockstep, a
// chunk at a time, so no more than a chunk of logits is ever held.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { DType } from "../engine/dtype";
import { DynactError } from "../engine/errors";
import type { Checkpoint } from "../models/checkpoint";
import { convertToGguf, readGgufCheckpoint, type GgufDType, type GgufWriteResult } from "../models/formats/gguf";
import type { LlamaModel } from "../models/llama";
import { buildModel } from "../models/load";
import { weightBytes } from "../models/weights";
import { checkScoredIds, windows } from "./text";

export interface Scores {
  mean_nll: number;
  perplexity: number;
  /** Fraction of positions whose argmax (ties: lowest id) is the text's next token. */
  top1_accuracy: number;
}

/** How one candidate's next-token distributions differ from the reference's. */
export interface CandidateComparison {
  scores: Scores;
  /** Fraction of positions where the candidate's argmax equals the reference's. */
  top1_agreement: number;
  /** Mean over positions of KL(p_ref ‖ p_candidate), nats. */
  mean_kl: number;
  /** Largest KL at one position, nats. */
  max_kl: number;
}

export interface Comparison {
  tokens: number;
  reference: Scores;
  /** One per candidate, in order. */
  candidates: CandidateComparison[];
}

export interface CompareOptions {
  /** Positions per window including BOS (default: the reference's context). */
  ctx?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Score `ids` with the reference and every candidate on perplexity()'s windows ([BOS, t0 … t_{n-2}] from a fresh
 * KV cache, every text token scored; BOS is the models' bosId, which must be the same), all in lockstep so the
 * reference runs once: each model's perplexity and top-1 accuracy, and how each candidate's distributions differ
 * from the reference's.
 */
export function compareModels(reference: LlamaModel, candidates: readonly LlamaModel[], ids: readonly number[], opts: CompareOptions = {}): Comparison {
  const V = reference.config.vocabSize;
  if (!Array.isArray(candidates)) throw new DynactError("compareModels: pass the candidate models as an array");
  for (const c of candidates) {
    if (c.config.vocabSize !== V) throw new DynactError(`vocabularies differ: ${V} and ${c.config.vocabSize}`);
  }
  checkScoredIds(ids, V);
  const models = [reference, ...candidates];
  const ctx = opts.ctx ?? reference.config.seqLen;
  // Every model must start its windows from the same BOS, the reference's (its tokenizer's).
  const bos = reference.bosId;
  for (const c of candidates) {
    if (c.bosId !== bos) throw new DynactError(`BOS ids differ: ${bos} and ${c.bosId}`);
  }
  const maxCtx = Math.min(...models.map((m) => m.config.seqLen));
  if (ctx < 2 || ctx > maxCtx) throw new DynactError(`context ${ctx} must be from 2 to the models' ${maxCtx}`);
  const chunk = Math.min(...models.map((m) => m.chunkSize));
  const nll = new Float64Array(models.length);
  const hits = new Float64Array(models.length);
  const agree = new Float64Array(candidates.length);
  const kl = new Float64Array(candidates.length);
  const maxKl = new Float64Array(candidates.length);
  // Log-probabilities of one position: the reference's, and the candidate's being compared.
  const p = new Float64Array(V);
  const q = new Float64Array(V);
  const pr = new Float64Array(V); // the reference's probabilities, once per position for every candidate's KL
  let done = 0;
  for (const w of windows(ids, ctx - 1)) {
    const input = [bos, ...w.ids.slice(0, -1)];
    for (const m of models) m.beginSequence();
    for (let i = 0; i < input.length; i += chunk) {
      const part = input.slice(i, i + chunk);
      // Each model's logits live in its own engine until its next call.
      const logits = models.map((m) => m.forwardBatch(part, i).f32());
      for (let t = 0; t < part.length; t++) {
        const target = w.ids[i + t]!;
        const refArgmax = logSoftmax(logits[0]!.subarray(t * V, (t + 1) * V), p);
        nll[0] -= p[target]!;
        if (refArgmax === target) hits[0]++;
        for (let k = 0; k < V; k++) pr[k] = Math.exp(p[k]!);
        for (let c = 0; c < candidates.length; c++) {
          const argmax = logSoftmax(logits[c + 1]!.subarray(t * V, (t + 1) * V), q);
          nll[c + 1] -= q[target]!;
          if (argmax === target) hits[c + 1]++;
          if (argmax === refArgmax) agree[c]++;
          let d = 0;
          for (let k = 0; k < V; k++) d += pr[k]! * (p[k]! - q[k]!);
          kl[c] += d;
          maxKl[c] = Math.max(maxKl[c]!, d);
        }
      }
    }
    done += w.ids.length;
    opts.onProgress?.(done, ids.length);
  }
  const n = ids.length;
  const scores = (m: number): Scores => ({ mean_nll: nll[m]! / n, perplexity: Math.exp(nll[m]! / n), top1_accuracy: hits[m]! / n });
  return {
    tokens: n,
    reference: scores(0),
    candidates: candidates.map((_, c) => ({ scores: scores(c + 1), top1_agreement: agree[c]! / n, mean_kl: kl[c]! / n, max_kl: maxKl[c]! })),
  };
}

/** log softmax of `logits` in f64 into `out`; returns the argmax (ties to the lowest id, as greedy decoding). */
function logSoftmax(logits: Float32Array, out: Float64Array): number {
  let max = -Infinity;
  let argmax = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      argmax = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = Math.log(sum) + max;
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return argmax;
}

export interface QuantReportRow extends Omit<CandidateComparison, "scores">, Scores {
  dtype: GgufDType;
  /** Engine bytes of the converted weights. */
  weight_bytes: number;
  delta_perplexity: number;
  /** (ppl − ppl_ref) / ppl_ref. */
  delta_perplexity_rel: number;
  /** Tensors written in another type (quantized rows must be a multiple of 32 values: those stay f16). */
  fallbacks: GgufWriteResult["fallbacks"];
}

export interface QuantReport {
  model: string;
  /** The reference's matrix types, as stored. */
  reference_dtypes: DType[];
  tokens: number;
  ctx: number;
  reference: Scores & { weight_bytes: number };
  rows: QuantReportRow[];
}

export interface QuantReportOptions {
  dtypes: readonly GgufDType[];
  ctx?: number;
  /** BOS id of the tokenizer `ids` come from: the checkpoint's models are built with it (model.bosId). */
  bosId: number;
  threads?: number;
  /** Where the converted files go, created if needed (default: a temporary folder, removed afterwards). */
  dir?: string;
  /**
   * Most bytes of weights (the reference's plus the candidates') held in memory at once (default 6 GiB): the
   * candidates are scored in as few passes as fit, the reference running once per pass.
   */
  maxBytes?: number;
  /** Conversion, then scoring (as many dtypes at once as maxBytes allows), as a stage name and counts. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Convert `ckpt` to each dtype and compare them with the checkpoint as stored on `ids`, several per pass. */
export function quantReport(ckpt: Checkpoint, ids: readonly number[], opts: QuantReportOptions): QuantReport {
  if (opts.dtypes.length === 0) throw new DynactError("no dtypes to compare");
  const ctx = opts.ctx ?? ckpt.config.seqLen;
  const maxBytes = opts.maxBytes ?? 6 * 2 ** 30;
  // The windows need ctx positions: a shorter KV cache than the checkpoint's leaves the logits unchanged.
  const load = (c: Checkpoint) => buildModel(c, { contextLength: ctx, threads: opts.threads ?? 1, bosId: opts.bosId });
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), "dynact-quant-"));
  mkdirSync(dir, { recursive: true });
  const models: LlamaModel[] = [];
  try {
    const stage = `converting to ${opts.dtypes.join(", ")}`;
    opts.onProgress?.(stage, 0, opts.dtypes.length);
    const converted = opts.dtypes.map((dtype, i) => {
      const file = path.join(dir, `${path.basename(ckpt.path).replace(/\.(gguf|bin|safetensors)$/i, "")}-${dtype}.gguf`);
      const { fallbacks } = convertToGguf(ckpt, file, dtype);
      opts.onProgress?.(stage, i + 1, opts.dtypes.length);
      const cc = readGgufCheckpoint(file);
      return { dtype, fallbacks, ckpt: cc, bytes: weightBytes(cc) };
    });
    // Passes: consecutive candidates while they fit beside the reference (at least one per pass).
    const refBytes = weightBytes(ckpt);
    const passes: (typeof converted)[] = [];
    for (const c of converted) {
      const last = passes.at(-1);
      if (last && refBytes + last.reduce((n, x) => n + x.bytes, 0) + c.bytes <= maxBytes) last.push(c);
      else passes.push([c]);
    }
    models.push(load(ckpt));
    let reference: Scores | undefined;
    const results: CandidateComparison[] = [];
    for (const pass of passes) {
      // Each into `models` as it loads, so a failing load still closes the others' worker pools.
      const candidates = pass.map((c) => {
        const m = load(c.ckpt);
        models.push(m);
        return m;
      });
      const label = `scoring ${pass.map((c) => c.dtype).join(", ")}`;
      const r = compareModels(models[0]!, candidates, ids, { ctx, onProgress: (d, t) => opts.onProgress?.(label, d, t) });
      reference = r.reference;
      results.push(...r.candidates);
      for (const m of candidates) m.close();
      models.length = 1; // the candidates' memories are garbage once unreferenced
    }
    const rows: QuantReportRow[] = converted.map(({ dtype, fallbacks, bytes }, i) => {
      const r = results[i]!;
      return {
        dtype, weight_bytes: bytes, ...r.scores,
        delta_perplexity: r.scores.perplexity - reference!.perplexity,
        delta_perplexity_rel: r.scores.perplexity / reference!.perplexity - 1,
        top1_agreement: r.top1_agreement, mean_kl: r.mean_kl, max_kl: r.max_kl, fallbacks,
      };
    });
    const refDtypes = [...new Set([...ckpt.tensors.values()].filter((e) => e.shape.length > 1).map((e) => e.dtype))];
    return { model: ckpt.path, reference_dtypes: refDtypes, tokens: ids.length, ctx, reference: { ...reference!, weight_bytes: refBytes }, rows };
  } finally {
    for (const m of models) m.close();
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
