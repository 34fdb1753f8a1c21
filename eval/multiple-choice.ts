// Zero-shot multiple choice with lm-evaluation-harness semantics. Each choice is scored by the summed log-likelihood
// of its continuation (" " + choice) given the context; acc takes the argmax of the sums, acc_norm of the sums
// divided by the choice's length in characters (lm-eval: len(choice) of the Python string). Stderrs are lm-eval's
// mean_stderr: sample standard deviation / sqrt(n).
// Sequences are [BOS, context…, continuation…]; one longer than the context keeps its last seqLen+1 tokens, as the
// harness truncates. The prefix before the continuation (the same for every choice unless truncation shifts it) runs
// once per item; each choice then runs from the prefix length on, overwriting the positional KV cache.
import { DynactError } from "../engine/errors";
import type { LoadedModel } from "../models/load";
import type { Tokenizer } from "../models/tokenizer/tokenizer";
import { forEachLogits, nll } from "./perplexity";
import { checkItem, type McItem, type McTask } from "./tasks";

/** lm-eval's default target_delimiter, put between context and choice. */
const TARGET_DELIMITER = " ";

export interface EvaluateOptions {
  /** Score only the first N items. */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ItemResult {
  label: number;
  /** Summed log-likelihood of each choice's continuation, nats. */
  logliks: number[];
  pred: number;
  pred_norm: number;
  /** The context was cut from the left to fit the model's context. */
  truncated: boolean;
}

export interface TaskResult {
  task: string;
  n: number;
  acc: number;
  /** null for fewer than 2 items. */
  acc_stderr: number | null;
  acc_norm: number;
  acc_norm_stderr: number | null;
  /** Items whose context was truncated. */
  truncated: number;
  items: ItemResult[];
}

export function evaluate(loaded: Pick<LoadedModel, "model" | "tokenizer">, task: McTask, opts: EvaluateOptions = {}): TaskResult {
  const limit = opts.limit ?? Infinity;
  if (!(limit >= 1) || (Number.isFinite(limit) && !Number.isInteger(limit))) {
    throw new DynactError(`limit must be a positive integer, got ${limit}`);
  }
  // readTask checks what it reads; a task built in code was not checked, and scored an empty task as NaN, a label
  // outside the choices as a miss and an empty choice's log-likelihood per character as -Infinity.
  if (task.items.length === 0) throw new DynactError(`${task.file}: no items`);
  const items = task.items.slice(0, limit);
  items.forEach((item, i) => checkItem(item, `${task.file}: item ${i + 1}`));
  const results = items.map((item, i) => {
    const r = scoreItem(loaded, item, `${task.file}: item ${i + 1}`);
    opts.onProgress?.(i + 1, items.length);
    return r;
  });
  const acc = results.map((r) => (r.pred === r.label ? 1 : 0));
  const accNorm = results.map((r) => (r.pred_norm === r.label ? 1 : 0));
  return {
    task: task.name,
    n: results.length,
    acc: mean(acc),
    acc_stderr: meanStderr(acc),
    acc_norm: mean(accNorm),
    acc_norm_stderr: meanStderr(accNorm),
    truncated: results.filter((r) => r.truncated).length,
    items: results,
  };
}

/**
 * lm-eval's _encode_pair: trailing whitespace of the context moves to the continuation; the context is encoded
 * alone and the whole string once, and the continuation is what follows the context's token count in the whole.
 */
export function encodePair(tokenizer: Tokenizer, context: string, continuation: string): { context: number[]; continuation: number[] } {
  const ctx = context.trimEnd();
  const contextIds = tokenizer.encode(ctx, { bos: false });
  const whole = tokenizer.encode(context + continuation, { bos: false });
  return { context: contextIds, continuation: whole.slice(contextIds.length) };
}

function scoreItem({ model, tokenizer }: Pick<LoadedModel, "model" | "tokenizer">, item: McItem, where: string): ItemResult {
  const seqLen = model.config.seqLen;
  let truncated = false;
  let prefix: number[] | null = null; // what the KV cache holds, positions 0 … prefix.length-1
  let prefixLogits: Float32Array = new Float32Array(0); // the logits after it, which score every continuation's first token
  const logliks = item.choices.map((choice, c) => {
    const pair = encodePair(tokenizer, item.context, TARGET_DELIMITER + choice);
    const cont = pair.continuation;
    if (cont.length === 0) throw new DynactError(`${where}: choice ${c} encodes to no tokens after the context`);
    if (cont.length > seqLen) {
      throw new DynactError(`${where}: choice ${c} is ${cont.length} tokens, longer than the context of ${seqLen}`);
    }
    const seq = [tokenizer.bosId, ...pair.context, ...cont];
    // The last token is only a target, so seqLen + 1 tokens fit.
    const window = seq.slice(Math.max(0, seq.length - (seqLen + 1)));
    truncated ||= window.length < seq.length;
    const head = window.slice(0, window.length - cont.length);
    if (!prefix || !sameIds(head, prefix)) {
      model.beginSequence();
      prefixLogits = model.prefill(head).read(); // a copy: the next forward overwrites the logits tensor
      model.beginGeneration();
      prefix = head;
    }
    let ll = -nll(prefixLogits, cont[0]);
    forEachLogits(model, cont.slice(0, -1), head.length, (logits, pos) => (ll -= nll(logits, cont[pos - head.length + 1])));
    return ll;
  });
  const lengths = item.choices.map((choice) => [...choice].length); // code points, as Python's len
  return {
    label: item.label,
    logliks,
    pred: argmax(logliks),
    pred_norm: argmax(logliks.map((ll, c) => ll / lengths[c])),
    truncated,
  };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** First index of the maximum, as numpy's argmax. */
function argmax(xs: readonly number[]): number {
  return xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
}

function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** lm-eval's mean_stderr: sample standard deviation (n - 1) / sqrt(n); null when n < 2. */
export function meanStderr(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  const variance = xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1);
  return Math.sqrt(variance / xs.length);
}
