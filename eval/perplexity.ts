// Perplexity of a token sequence: consecutive windows of ctx-1 text tokens, each run from a fresh KV cache as
// [BOS, t0 … t_{n-2}], every text token scored (t0 from BOS alone). NLL in nats, summed in f64.
import { DynactError } from "../engine/errors";
import type { LlamaModel } from "../models/llama";
import { windows } from "./text";

export interface PerplexityOptions {
  /** Positions per window including BOS (default: the model's context). */
  ctx?: number;
  bos?: number;
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

export function perplexity(model: LlamaModel, ids: readonly number[], opts: PerplexityOptions = {}): PerplexityResult {
  const ctx = opts.ctx ?? model.config.seqLen;
  const bos = opts.bos ?? 1;
  const promptLength = opts.promptLength ?? 0;
  if (model.usesPromptGate && promptLength < 1) {
    throw new DynactError(`${model.ffnGateSpec} chooses neurons from a prompt: give the prompt length per window (--prompt-tokens N)`);
  }
  const result: PerplexityResult["windows"] = [];
  let total = 0;
  let done = 0;
  for (const w of windows(ids, ctx - 1)) {
    let sum = 0;
    let token = bos;
    model.beginSequence();
    for (let pos = 0; pos < w.ids.length; pos++) {
      if (pos === promptLength) model.beginGeneration();
      sum += nll(model.forward(token, pos).f32(), w.ids[pos]);
      token = w.ids[pos];
    }
    result.push({ start: w.start, tokens: w.ids.length, nll_sum: sum });
    total += sum;
    done += w.ids.length;
    opts.onProgress?.(done, ids.length);
  }
  const mean = total / ids.length;
  return { mean_nll: mean, perplexity: Math.exp(mean), tokens: ids.length, windows: result };
}

/** -log softmax(logits)[target], in f64. */
export function nll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.log(sum) + max - logits[target];
}
