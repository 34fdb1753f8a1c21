// Evaluation and calibration text as token ids: the whole file encoded without BOS, then the first N ids.
import { readFileSync } from "node:fs";
import { DynactError } from "../engine/errors";
import type { Tokenizer } from "../models/tokenizer/tokenizer";

export function readTextTokens(file: string, tokenizer: Tokenizer, maxTokens = Infinity): number[] {
  // Checked: slice(0, -5) kept all but the last 5 tokens, and 0 or 2.5 quietly gave 0 or 2.
  if (maxTokens !== Infinity && !(Number.isInteger(maxTokens) && maxTokens >= 1)) {
    throw new DynactError(`the number of tokens to read must be a positive integer, got ${maxTokens}`);
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new DynactError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const ids = tokenizer.encode(text, { bos: false });
  if (ids.length === 0) throw new DynactError(`${file}: no text to evaluate`);
  return Number.isFinite(maxTokens) ? ids.slice(0, maxTokens) : ids;
}

/**
 * Token ids to score (perplexity, compareModels): at least one, each an id of the vocabulary. Checked up front: no
 * ids gave a mean of 0/0, and an id outside the vocabulary is only ever a target at a window's end, scored as NaN.
 */
export function checkScoredIds(ids: readonly number[], vocabSize: number): void {
  if (ids.length === 0) throw new DynactError("no tokens to score");
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new DynactError(`token ${id} (at ${i}) outside the vocabulary of ${vocabSize}`);
    }
  });
}

/** Consecutive windows of at most `len` tokens covering ids in order. */
export function windows(ids: readonly number[], len: number): { start: number; ids: number[] }[] {
  if (!Number.isInteger(len) || len < 1) throw new DynactError(`window length must be a positive integer, got ${len}`);
  const out: { start: number; ids: number[] }[] = [];
  for (let start = 0; start < ids.length; start += len) out.push({ start, ids: ids.slice(start, start + len) });
  return out;
}
