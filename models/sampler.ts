// Next-token sampling, mirroring llama2.c run.c's sampler: greedy argmax at temperature 0, else softmax of
// logits/temperature in f32 and one xorshift* coin per token, then nucleus (top-p) or plain multinomial
// sampling. Top-k (absent from run.c) keeps the k most likely tokens, renormalised, before either.
// Without top-k, the same seed and logits give the ids run.c gives (its float arithmetic is reproduced with
// Math.fround; probability ties, which run.c's qsort orders arbitrarily, go to the lowest id here).
import { DynactError } from "../engine/errors";

export interface SamplerOptions {
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass; 0 or 1 = off. */
  topP: number;
  /** Keep the k most likely tokens; absent, <= 0 or >= vocabSize = off. */
  topK?: number;
  /** xorshift* state: a positive integer (0 is the generator's fixed point, which run.c never uses either). */
  seed: number;
}

const fround = Math.fround;

// Sort keys pack a probability's f32 bits (< 2^30 for values in [0, 1]) above a 23-bit id: exact in an f64.
const MAX_VOCAB = 2 ** 23;

/** Index of the largest logit; ties go to the lowest index; NaN never wins (as the argmax kernel). */
export function argmaxTies(logits: Float32Array): number {
  let best = 0;
  let max = logits[0];
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i];
    if (v > max || (max !== max && v === v)) {
      max = v;
      best = i;
    }
  }
  return best;
}

// 0x2545F4914F6CDD1D, run.c's xorshift* multiplier, as 32-bit halves.
const MUL_HI = 0x2545f491;
const MUL_LO = 0x4f6cdd1d;

/** High 32 bits of the 64-bit product of two uint32 (16-bit limbs keep every partial product exact in f64). */
function mulHi32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * run.c's random_u32/random_f32: xorshift* on a 64-bit state, held as two uint32 halves so that the
 * per-token path does no BigInt arithmetic (and allocates nothing).
 */
export class XorShiftStar {
  private hi: number;
  private lo: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 1) {
      throw new DynactError(`sampler seed must be a positive integer up to 2^53-1, got ${seed}`);
    }
    this.hi = Math.floor(seed / 2 ** 32);
    this.lo = seed >>> 0;
  }

  nextU32(): number {
    let hi = this.hi, lo = this.lo;
    // state ^= state >> 12
    lo = (lo ^ ((lo >>> 12) | (hi << 20))) >>> 0;
    hi = (hi ^ (hi >>> 12)) >>> 0;
    // state ^= state << 25
    hi = (hi ^ ((hi << 25) | (lo >>> 7))) >>> 0;
    lo = (lo ^ (lo << 25)) >>> 0;
    // state ^= state >> 27
    lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0;
    hi = (hi ^ (hi >>> 27)) >>> 0;
    this.hi = hi;
    this.lo = lo;
    // (state * MUL) >> 32, mod 2^64: bits 32..63 of the product.
    return (mulHi32(lo, MUL_LO) + Math.imul(hi, MUL_LO) + Math.imul(lo, MUL_HI)) >>> 0;
  }

  /** Uniform in [0, 1) with 24 random bits, exactly representable in f32. */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export class Sampler {
  private readonly temperature: number;
  private readonly topP: number;
  /** 0 < topP < 1, decided on the caller's value: a top-p that rounds to 0 or 1 in f32 still means a nucleus. */
  private readonly nucleus: boolean;
  private readonly topK: number;
  private readonly rng: XorShiftStar;
  private readonly probs: Float32Array;
  private readonly probBits: Uint32Array;
  /** Candidate token ids (nucleus or top-k), most likely first. */
  private readonly order: Int32Array;
  private readonly keys: Float64Array;

  constructor(readonly vocabSize: number, opts: SamplerOptions) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_VOCAB) {
      throw new DynactError(`sampler vocabulary size must be an integer in [1, 2^23], got ${vocabSize}`);
    }
    // run.c keeps these in f32; rounding here makes the comparisons below match it.
    const temperature = fround(opts.temperature);
    if (!(temperature >= 0) || !Number.isFinite(temperature)) {
      throw new DynactError(`temperature must be a finite number >= 0, got ${opts.temperature}`);
    }
    if (!(opts.topP >= 0 && opts.topP <= 1)) throw new DynactError(`top-p must be in [0, 1], got ${opts.topP}`);
    const topK = opts.topK ?? 0;
    if (!Number.isInteger(topK)) throw new DynactError(`top-k must be an integer, got ${opts.topK}`);
    this.temperature = temperature;
    this.topP = fround(opts.topP);
    this.nucleus = opts.topP > 0 && opts.topP < 1;
    this.topK = topK > 0 && topK < vocabSize ? topK : 0;
    this.rng = new XorShiftStar(opts.seed);
    this.probs = new Float32Array(vocabSize);
    this.probBits = new Uint32Array(this.probs.buffer);
    this.order = new Int32Array(vocabSize);
    this.keys = new Float64Array(vocabSize);
  }

  /** The next token id. `logits` is read, never written. */
  sample(logits: Float32Array): number {
    if (logits.length !== this.vocabSize) {
      throw new DynactError(`sampler got ${logits.length} logits for a vocabulary of ${this.vocabSize}`);
    }
    if (this.temperature === 0) return argmaxTies(logits);
    this.softmax(logits);
    const coin = this.rng.nextF32();
    if (this.topK > 0) {
      this.selectTopK();
      return this.nucleus ? this.truncateAndPick(this.topK, coin) : this.pickFromOrder(this.topK, coin);
    }
    return this.nucleus ? this.sampleTopP(coin) : this.sampleMult(coin);
  }

  /** probs = softmax(logits / temperature), in f32 step by step as run.c computes it. */
  private softmax(logits: Float32Array): void {
    const p = this.probs;
    const n = this.vocabSize;
    for (let i = 0; i < n; i++) p[i] = logits[i] / this.temperature;
    let max = p[0];
    for (let i = 1; i < n; i++) if (p[i] > max) max = p[i];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      p[i] = Math.exp(fround(p[i] - max));
      sum = fround(sum + p[i]);
    }
    if (!(sum > 0 && sum < Infinity)) {
      throw new DynactError(
        "sampler: logits / temperature are not all finite (NaN or infinite logits, or a temperature too small)",
      );
    }
    for (let i = 0; i < n; i++) p[i] = p[i] / sum;
  }

  /** run.c's sample_mult: walk the cdf in id order. */
  private sampleMult(coin: number): number {
    const p = this.probs;
    let cdf = 0;
    for (let i = 0; i < this.vocabSize; i++) {
      cdf = fround(cdf + p[i]);
      if (coin < cdf) return i;
    }
    return this.vocabSize - 1; // rounding left the cdf short of the coin
  }

  /** run.c's sample_topp: drop tokens that cannot be in the nucleus, sort the rest, truncate, sample. */
  private sampleTopP(coin: number): number {
    const n = this.vocabSize;
    if (n === 1) return 0;
    // Tokens below (1 - topP) / (n - 1) cannot be in the nucleus, except the most likely one, which always is:
    // when all fall below (possible when topP < 1/n), run.c reads before its buffer; the nucleus is the argmax.
    const cutoff = fround(fround(1 - this.topP) / (n - 1));
    const p = this.probs;
    let n0 = 0;
    for (let i = 0; i < n; i++) if (p[i] >= cutoff) this.order[n0++] = i;
    if (n0 === 0) return argmaxTies(p);
    this.sortByProbDesc(n0);
    return this.truncateAndPick(n0, coin);
  }

  /** Nucleus of the sorted candidates order[0..n): the shortest prefix whose mass exceeds topP (run.c's loop). */
  private truncateAndPick(n: number, coin: number): number {
    const p = this.probs, o = this.order;
    let cumulative = 0;
    let last = n - 1; // rounding: the whole list
    for (let i = 0; i < n; i++) {
      cumulative = fround(cumulative + p[o[i]]);
      if (cumulative > this.topP) {
        last = i;
        break;
      }
    }
    const r = fround(coin * cumulative);
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf = fround(cdf + p[o[i]]);
      if (r < cdf) return o[i];
    }
    return o[last];
  }

  /** Multinomial over order[0..n), whose probabilities sum to 1. */
  private pickFromOrder(n: number, coin: number): number {
    const p = this.probs, o = this.order;
    let cdf = 0;
    for (let i = 0; i < n; i++) {
      cdf = fround(cdf + p[o[i]]);
      if (coin < cdf) return o[i];
    }
    return o[n - 1];
  }

  /** order[0..k) = the k most likely ids (ties: lowest id), most likely first, with probs renormalised over them. */
  private selectTopK(): void {
    const p = this.probs, o = this.order, k = this.topK;
    // A min-heap of the best k so far, worst at the root: O(n log k), and most tokens cost one comparison.
    for (let i = 0; i < k; i++) o[i] = i;
    for (let i = (k >> 1) - 1; i >= 0; i--) this.siftDown(i, k);
    for (let i = k; i < this.vocabSize; i++) {
      // Every id in the heap is lower than i, so an equal probability does not displace it.
      if (p[i] > p[o[0]]) {
        o[0] = i;
        this.siftDown(0, k);
      }
    }
    this.sortByProbDesc(k);
    let sum = 0;
    for (let i = 0; i < k; i++) sum = fround(sum + p[o[i]]);
    for (let i = 0; i < k; i++) p[o[i]] = p[o[i]] / sum;
  }

  /**
   * Sorts order[0..n) by decreasing probability, ties by increasing id. A native numeric sort of packed keys:
   * several times faster than a comparator over the ids (top-p may sort most of a 32k vocabulary per token).
   */
  private sortByProbDesc(n: number): void {
    const o = this.order, keys = this.keys, bits = this.probBits;
    // Negated so that the ascending sort puts the largest probability, then the lowest id, first.
    for (let i = 0; i < n; i++) keys[i] = -(bits[o[i]] * MAX_VOCAB + (MAX_VOCAB - 1 - o[i]));
    keys.subarray(0, n).sort();
    for (let i = 0; i < n; i++) o[i] = MAX_VOCAB - 1 - (-keys[i] % MAX_VOCAB);
  }

  /** Id a ranks below id b: less likely, or as likely with a higher id. */
  private worse(a: number, b: number): boolean {
    const p = this.probs;
    return p[a] < p[b] || (p[a] === p[b] && a > b);
  }

  private siftDown(i: number, n: number): void {
    const o = this.order;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const c = l + 1 < n && this.worse(o[l + 1], o[l]) ? l + 1 : l;
      if (!this.worse(o[c], o[i])) return;
      const t = o[i];
      o[i] = o[c];
      o[c] = t;
      i = c;
    }
  }
}
