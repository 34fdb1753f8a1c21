// Prompt → tokens → text: run the prompt through the model, then sample until a stop token or the token budget.
import { performance } from "node:perf_hooks";
import { DynactError } from "../engine/errors";
import type { LoadedModel } from "./load";
import type { Sampler } from "./sampler";
import { StreamDecoder } from "./tokenizer/stream-decoder";

export interface GenerateOptions {
  prompt: string;
  /** New tokens to generate at most (clamped to what the context leaves). */
  maxNewTokens: number;
  sampler: Sampler;
  /** Called with each piece of decoded text as it is produced. */
  onText?: (text: string) => void;
}

export type StopReason = "eos" | "bos" | "length";

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  stop: StopReason;
  /** New tokens the context allowed: maxNewTokens, or less when the context is too short. */
  budget: number;
  promptSeconds: number;
  generateSeconds: number;
}

export function generate(loaded: LoadedModel, opts: GenerateOptions): GenerateResult {
  const { model, tokenizer, stopAtBos } = loaded;
  const seqLen = model.config.seqLen;
  // From JavaScript a missing prompt or sampler failed inside the tokenizer or the loop with a TypeError.
  if (typeof opts.prompt !== "string") {
    throw new DynactError(`the prompt must be a string ("" for none), got ${typeof opts.prompt}`);
  }
  if (typeof opts.sampler?.sample !== "function") {
    throw new DynactError("generate needs a sampler: new Sampler(vocabSize, { temperature, topP, seed })");
  }
  const promptTokens = tokenizer.encode(opts.prompt, { bos: true });
  if (promptTokens.length > seqLen) {
    throw new DynactError(`the prompt is ${promptTokens.length} tokens, longer than the context of ${seqLen}`);
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new DynactError(`the number of new tokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  }
  // The last sampled token is never run, so the context holds the prompt plus all but one new token.
  const budget = Math.min(opts.maxNewTokens, seqLen - promptTokens.length + 1);

  const t0 = performance.now();
  model.beginSequence();
  let logits = model.prefill(promptTokens);
  model.beginGeneration();
  const t1 = performance.now();

  const decoder = new StreamDecoder(tokenizer);
  const tokens: number[] = [];
  let text = "";
  let stop: StopReason = "length";
  let token = promptTokens[promptTokens.length - 1];
  for (let pos = promptTokens.length; tokens.length < budget; pos++) {
    const next = opts.sampler.sample(logits.f32());
    if (next === tokenizer.eosId) {
      stop = "eos";
      break;
    }
    if (stopAtBos && next === tokenizer.bosId) {
      stop = "bos";
      break;
    }
    tokens.push(next);
    const piece = decoder.push(token, next);
    text += piece;
    if (piece) opts.onText?.(piece);
    token = next;
    if (tokens.length < budget) logits = model.forward(next, pos);
  }
  const tail = decoder.flush();
  text += tail;
  if (tail) opts.onText?.(tail);
  const t2 = performance.now();
  return {
    promptTokens, tokens, text, stop, budget,
    promptSeconds: (t1 - t0) / 1000, generateSeconds: (t2 - t1) / 1000,
  };
}
