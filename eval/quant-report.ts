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
import { windows } from "./text";

export interface Scores {
  mean_nll: number;
  perplexity: number;
  /** Fraction of positions whose argmax (ties: lowest id) is the text's next token. */
  top1_accuracy: number;
}

export interface Comparison {
  tokens: number;
  reference: Scores;
  candidate: Scores;
  /** Fraction of positions where the candidate's argmax equals the reference's. */
  top1_agreement: number;
  /** Mean over positions of KL(p_ref ‖ p_candidate), nats. */
  mean_kl: number;
  /** Largest KL at one position, nats. */
  max_kl: number;
}

export interface CompareOptions {
  /** Positions per window including BOS (default: the reference's context). */
  ctx?: number;
  bos?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Score `ids` with both models on perplexity()'s windows ([BOS, t0 … t_{n-2}] from a fresh KV cache, every text
 * token scored): each model's perplexity and top-1 accuracy, and how the candidate's distributions differ.
 */
export function compareModels(reference: LlamaModel, candidate: LlamaModel, ids: readonly number[], opts: CompareOptions = {}): Comparison {
  const V = reference.config.vocabSize;
  if (candidate.config.vocabSize !== V) throw new DynactError(`vocabularies differ: ${V} and ${candidate.config.vocabSize}`);
  const ctx = opts.ctx ?? reference.config.seqLen;
  const bos = opts.bos ?? 1;
  if (ctx < 2 || ctx > reference.config.seqLen || ctx > candidate.config.seqLen) {
    throw new DynactError(`context ${ctx} must be from 2 to the models' ${Math.min(reference.config.seqLen, candidate.config.seqLen)}`);
  }
  const chunk = Math.min(reference.chunkSize, candidate.chunkSize);
  let nllRef = 0;
  let nllCand = 0;
  let hitRef = 0;
  let hitCand = 0;
  let agree = 0;
  let kl = 0;
  let maxKl = 0;
  let done = 0;
  for (const w of windows(ids, ctx - 1)) {
    const input = [bos, ...w.ids.slice(0, -1)];
    reference.beginSequence();
    candidate.beginSequence();
    for (let i = 0; i < input.length; i += chunk) {
      const part = input.slice(i, i + chunk);
      const ref = reference.forwardBatch(part, i).f32().slice(); // the next call overwrites the view
      const cand = candidate.forwardBatch(part, i).f32();
      for (let t = 0; t < part.length; t++) {
        const target = w.ids[i + t]!;
        const p = logSoftmax(ref.subarray(t * V, (t + 1) * V));
        const q = logSoftmax(cand.subarray(t * V, (t + 1) * V));
        nllRef -= p.logp[target]!;
        nllCand -= q.logp[target]!;
        if (p.argmax === target) hitRef++;
        if (q.argmax === target) hitCand++;
        if (p.argmax === q.argmax) agree++;
        let d = 0;
        for (let k = 0; k < V; k++) d += Math.exp(p.logp[k]!) * (p.logp[k]! - q.logp[k]!);
        kl += d;
        maxKl = Math.max(maxKl, d);
      }
    }
    done += w.ids.length;
    opts.onProgress?.(done, ids.length);
  }
  const n = ids.length;
  const scores = (nll: number, hits: number): Scores => ({ mean_nll: nll / n, perplexity: Math.exp(nll / n), top1_accuracy: hits / n });
  return { tokens: n, reference: scores(nllRef, hitRef), candidate: scores(nllCand, hitCand), top1_agreement: agree / n, mean_kl: kl / n, max_kl: maxKl };
}

/** log softmax in f64 and the argmax (ties to the lowest id, as greedy decoding). */
function logSoftmax(logits: Float32Array): { logp: Float64Array; argmax: number } {
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
  const logp = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) logp[i] = logits[i]! - lse;
  return { logp, argmax };
}

export interface QuantReportRow extends Omit<Comparison, "reference" | "candidate" | "tokens">, Scores {
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
  bos?: number;
  threads?: number;
  /** Where the converted files go, created if needed (default: a temporary folder, removed afterwards). */
  dir?: string;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Convert `ckpt` to each dtype in turn and compare it with the checkpoint as stored on `ids`. */
export function quantReport(ckpt: Checkpoint, ids: readonly number[], opts: QuantReportOptions): QuantReport {
  if (opts.dtypes.length === 0) throw new DynactError("no dtypes to compare");
  const ctx = opts.ctx ?? ckpt.config.seqLen;
  // The windows need ctx positions: a shorter KV cache than the checkpoint's leaves the logits unchanged.
  const load = (c: Checkpoint) => buildModel(c, { contextLength: ctx, threads: opts.threads ?? 1 });
  const reference = load(ckpt);
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), "dynact-quant-"));
  mkdirSync(dir, { recursive: true });
  const rows: QuantReportRow[] = [];
  let refScores: Scores | undefined;
  try {
    for (const dtype of opts.dtypes) {
      const file = path.join(dir, `${path.basename(ckpt.path).replace(/\.(gguf|bin|safetensors)$/i, "")}-${dtype}.gguf`);
      const { fallbacks } = convertToGguf(ckpt, file, dtype);
      const converted = readGgufCheckpoint(file);
      const candidate = load(converted);
      try {
        const c = compareModels(reference, candidate, ids, { ctx, bos: opts.bos, onProgress: (d, t) => opts.onProgress?.(dtype, d, t) });
        refScores = c.reference;
        rows.push({
          dtype, weight_bytes: weightBytes(converted), ...c.candidate,
          delta_perplexity: c.candidate.perplexity - c.reference.perplexity,
          delta_perplexity_rel: c.candidate.perplexity / c.reference.perplexity - 1,
          top1_agreement: c.top1_agreement, mean_kl: c.mean_kl, max_kl: c.max_kl, fallbacks,
        });
      } finally {
        candidate.engine.pool?.close();
      }
    }
  } finally {
    reference.engine.pool?.close();
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const refDtypes = [...new Set([...ckpt.tensors.values()].filter((e) => e.shape.length > 1).map((e) => e.dtype))];
  return { model: ckpt.path, reference_dtypes: refDtypes, tokens: ids.length, ctx, reference: { ...refScores!, weight_bytes: weightBytes(ckpt) }, rows };
}
