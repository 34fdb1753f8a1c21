// Perplexity of a token sequence: consecutive windows of ctx-1 text tokens, each run from a fresh KV cache as
// [BOS, t0 … t_{n-2}], every text token scored (t0 from BOS alone). NLL in nats, summed in f64.
import { DynactError } from "../engine/errors";
import type { LlamaModel } from "../models/llama";
import type { LoadedModel } from "../models/load";
import { checkScoredIds, windows } from "./text";

export interface PerplexityOptions {
  /** Positions per window including BOS (default: the model's context). */
  ctx?: number;
  /** For prompt-based gates (griffin, tda): the first N positions of each window are its prompt. */
  promptLength?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PerplexityResult {
  mean_nll: number;
  perplexity: number;
  tokens: number;
  windows: { start: number; tokens: number; nll_sum: number }[];
}

/**
 * Score `ids` (token ids without BOS), each window from the model's BOS (model.bosId: its tokenizer's, set by
 * loadModel). Takes the loaded model, as generate and evaluate do, or its model alone: the same BOS either way.
 */
export function perplexity(
  loaded: LlamaModel | Pick<LoadedModel, "model">, ids: readonly number[], opts: PerplexityOptions = {},
): PerplexityResult {
  const model = "model" in loaded ? loaded.model : loaded;
  const { seqLen, vocabSize } = model.config;
  const ctx = opts.ctx ?? seqLen;
  const bos = model.bosId;
  const promptLength = opts.promptLength ?? 0;
  // Checked up front: a bad ctx or prompt length surfaced as a window length or positions the caller never passed.
  checkScoredIds(ids, vocabSize);
  if (!Number.isInteger(ctx) || ctx < 2 || ctx > seqLen) {
    throw new DynactError(`ctx ${ctx} must be an integer from 2 (BOS and one token) to the model's context of ${seqLen}`);
  }
  if (!Number.isInteger(promptLength) || promptLength < 0) {
    throw new DynactError(`prompt length must be a non-negative integer, got ${promptLength}`);
  }
  if (model.usesPromptGate && promptLength < 1) {
    throw new DynactError(`${model.ffnGateSpec} chooses neurons from a prompt: give the prompt length per window (--prompt-tokens N)`);
  }
  const result: PerplexityResult["windows"] = [];
  let total = 0;
  let done = 0;
  for (const w of windows(ids, ctx - 1)) {
    let sum = 0;
    const input = [bos, ...w.ids.slice(0, -1)];
    const score = (logits: Float32Array, pos: number) => (sum += nll(logits, w.ids[pos]));
    model.beginSequence();
    // A prompt-based gate switches to generation where its prompt ends, so the prompt runs first on its own.
    const prompt = Math.min(promptLength, input.length);
    forEachLogits(model, input.slice(0, prompt), 0, score);
    if (prompt < input.length) {
      model.beginGeneration();
      forEachLogits(model, input.slice(prompt), prompt, score);
    }
    result.push({ start: w.start, tokens: w.ids.length, nll_sum: sum });
    total += sum;
    done += w.ids.length;
    opts.onProgress?.(done, ids.length);
  }
  const mean = total / ids.length;
  return { mean_nll: mean, perplexity: Math.exp(mean), tokens: ids.length, windows: result };
}

/**
 * Run ids at positions startPos… (forwardBatch chunks; token by token when the model is gated) and call `f` with
 * each position's logits, in order.
 */
export function forEachLogits(
  model: LlamaModel, ids: readonly number[], startPos: number, f: (logits: Float32Array, pos: number) => void,
): void {
  const V = model.config.vocabSize;
  for (let i = 0; i < ids.length; i += model.chunkSize) {
    const n = Math.min(model.chunkSize, ids.length - i);
    const logits = model.forwardBatch(ids.slice(i, i + n), startPos + i).f32();
    for (let t = 0; t < n; t++) f(logits.subarray(t * V, (t + 1) * V), startPos + i + t);
  }
}

/** -log softmax(logits)[target], in f64. */
export function nll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.log(sum) + max - logits[target];
}
