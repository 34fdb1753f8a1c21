// The text as training data. Its first EVAL_TOKENS ids are the evaluation tokens (what `dynact perplexity
// --max-tokens 4096` scores) and are never trained on; the next `heldout` ids give the held-out loss; training
// batches come from the rest. A sequence is [BOS, t_s … t_{s+T−2}] with targets t_s … t_{s+T−1}, which is how
// perplexity windows start too.
import { DynactError } from "../../engine/errors";
import { windows } from "../../eval/text";
import { XorShiftStar } from "../sampler";

export const EVAL_TOKENS = 4096;

export interface TextSplit {
  heldout: Int32Array;
  train: Int32Array;
}

export function splitText(ids: readonly number[], heldout: number, seq: number): TextSplit {
  const train = ids.length - EVAL_TOKENS - heldout;
  if (train < seq) {
    throw new DynactError(`the text has ${ids.length} tokens: ${EVAL_TOKENS} evaluation + ${heldout} held-out tokens leave ` +
      `${Math.max(0, train)} to train on, fewer than one sequence of ${seq}`);
  }
  return {
    heldout: Int32Array.from(ids.slice(EVAL_TOKENS, EVAL_TOKENS + heldout)),
    train: Int32Array.from(ids.slice(EVAL_TOKENS + heldout)),
  };
}

/** The split with `extra` tokens (teacher-generated text) appended to its training tokens. */
export function withSynthetic(s: TextSplit, extra: readonly number[]): TextSplit {
  const train = new Int32Array(s.train.length + extra.length);
  train.set(s.train);
  train.set(extra, s.train.length);
  return { heldout: s.heldout, train };
}

/**
 * Batch `step` of a run: B sequences at uniform random starts, drawn from a generator seeded by (seed, step)
 * alone, so a resumed run sees the batches an uninterrupted one would.
 */
export function sampleBatch(
  train: Int32Array, B: number, T: number, bos: number, seed: number, step: number, tokens: Int32Array, targets: Int32Array,
): void {
  // Distinct generator seeds per (seed < 2^32, step < 2^21); a few draws spread nearby seeds' state bits.
  const rng = new XorShiftStar(seed * 2 ** 21 + step + 1);
  for (let i = 0; i < 8; i++) rng.nextU32();
  const starts = train.length - T + 1;
  for (let b = 0; b < B; b++) {
    const s = rng.nextU32() % starts;
    tokens[b * T] = bos;
    tokens.set(train.subarray(s, s + T - 1), b * T + 1);
    targets.set(train.subarray(s, s + T), b * T);
  }
}

/** The held-out tokens as consecutive windows of at most T, each a sequence from BOS. */
export function heldoutSequences(heldout: Int32Array, T: number, bos: number): { tokens: Int32Array; targets: Int32Array }[] {
  return windows(Array.from(heldout), T).map((w) => ({
    tokens: Int32Array.from([bos, ...w.ids.slice(0, -1)]),
    targets: Int32Array.from(w.ids),
  }));
}

/** Largest step count sampleBatch keeps distinct per step, and the seeds it accepts. */
export const MAX_STEPS = 2 ** 21;
export const MAX_SEED = 2 ** 32 - 1;

/** FNV-1a over the split's ids: a resumed run must train on the same tokens. */
export function splitFingerprint(s: TextSplit): string {
  let h = 0x811c9dc5;
  for (const part of [s.heldout, s.train]) {
    h = Math.imul(h ^ part.length, 16777619);
    for (const id of part) h = Math.imul(h ^ id, 16777619);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
