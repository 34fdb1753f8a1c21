import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DynactError } from "../engine/errors";
import { Sampler, XorShiftStar, argmaxTies, type SamplerOptions } from "../models/sampler";

// Expected values below come from llama2.c's run.c itself (random_u32 and sample(), compiled with gcc and
// run outside the repo); only the numbers are kept here.

/** The logits the run.c reference run used at each step: a permutation of 0..V-1, /8, -3 (exact in f32). */
function runcLogits(V: number, step: number): Float32Array {
  return Float32Array.from({ length: V }, (_, i) => ((i * 7 + step * 13) % V) / 8 - 3);
}

function softmax64(logits: ArrayLike<number>, temperature: number): number[] {
  const max = Math.max(...Array.from(logits));
  const e = Array.from(logits, (v) => Math.exp((v - max) / temperature));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Ids by decreasing logit, ties by increasing id: the order the sampler ranks candidates in. */
function ranked(logits: Float32Array): number[] {
  return Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
}

/**
 * Ids the sampler may return: the top k (k off: all), then the shortest prefix of those whose renormalised
 * mass exceeds topP (off: all). `slack` widens the nucleus by the f32 rounding of the sampler's cumulative sums
 * (at most ~V·2^-24 on masses <= 1), so that a prefix sum landing next to topP cannot fail the check.
 */
function allowed(logits: Float32Array, o: SamplerOptions, slack = 1e-4): Set<number> {
  let ids = ranked(logits);
  const k = o.topK ?? 0;
  if (k > 0 && k < ids.length) ids = ids.slice(0, k);
  if (o.topP > 0 && o.topP < 1) {
    const p = softmax64(ids.map((i) => logits[i]), o.temperature);
    let cum = 0;
    let last = ids.length - 1;
    for (let i = 0; i < ids.length; i++) {
      cum += p[i];
      if (cum > o.topP + slack) {
        last = i;
        break;
      }
    }
    ids = ids.slice(0, last + 1);
  }
  return new Set(ids);
}

/** Pearson's chi-square of `counts` against probabilities `p` (a category with p = 0 must never occur). */
function chiSquare(counts: number[], p: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  let chi = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) {
      if (counts[i] > 0) return Infinity;
      continue;
    }
    chi += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
  }
  return chi;
}

/**
 * Logits on a 1/8 grid in [-8, 8] and temperatures in [0.25, 4]: distinct logits stay distinct (and nonzero)
 * as f32 probabilities, so the ranking of `allowed` is the sampler's exactly. A narrow grid half the time
 * makes ties (also at the top-k boundary) common.
 */
const gridLogits = (maxV: number): fc.Arbitrary<Float32Array> =>
  fc.constantFrom(64, 2)
    .chain((range) => fc.array(fc.integer({ min: -range, max: range }), { minLength: 1, maxLength: maxV }))
    .map((a) => Float32Array.from(a, (v) => v / 8));
const temperature = fc.double({ min: 0.25, max: 4, noNaN: true });
const topP = fc.double({ min: 0, max: 1, noNaN: true });
const seed = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

describe("argmaxTies", () => {
  it("returns the lowest index of the maximum", () => {
    const tied = fc.array(fc.constantFrom(-1, -0, 0, 1, 2), { minLength: 1, maxLength: 64 });
    fc.assert(fc.property(tied, (a) => {
      const x = Float32Array.from(a);
      expect(argmaxTies(x)).toBe(a.findIndex((v) => v === Math.max(...a)));
    }));
  });

  it("never picks NaN unless everything is NaN", () => {
    expect(argmaxTies(Float32Array.of(NaN, 1, 3, 3, NaN))).toBe(2);
    expect(argmaxTies(Float32Array.of(NaN, NaN))).toBe(0);
  });
});

describe("XorShiftStar", () => {
  const runcU32: [number, number[]][] = [
    [1, [1206177355, 2882512552, 3117485455, 1303648416, 241277360, 3362212811]],
    [42, [1456360119, 3359763283, 3393612768, 4054632243, 3283045847, 3589475362]],
    [1234567890, [3761933456, 36443633, 3203114224, 2492820138, 1477690355, 3389317833]],
    [9007199254740991, [2449417625, 2737799240, 551794973, 2151024150, 3347322909, 4077516429]],
    [0xdeadbeefcafe, [440530489, 3020192599, 3527643664, 4056258969, 1821890919, 1265142547]],
  ];

  it.each(runcU32)("seed %d gives run.c's random_u32 sequence", (s, want) => {
    const rng = new XorShiftStar(s);
    expect(want.map(() => rng.nextU32())).toEqual(want);
  });

  it("gives run.c's random_f32 sequence", () => {
    const rng = new XorShiftStar(42);
    const got = [0, 1, 2, 3].map(() => rng.nextF32());
    // run.c printed these with %.9g, enough to identify an f32; the values are (u32 >> 8) / 2^24 exactly.
    [0.339085221, 0.782255828, 0.790136993, 0.944042623].forEach((v, i) => expect(got[i]).toBe(Math.fround(v)));
  });

  it.each([0, -1, 1.5, NaN, 2 ** 53])("rejects seed %d", (s) => {
    expect(() => new XorShiftStar(s)).toThrow(DynactError);
  });
});

describe("Sampler", () => {
  const V = 50;
  const runcIds: [SamplerOptions, number[]][] = [
    [{ temperature: 1, topP: 0.9, seed: 42 }, [21, 11, 9, 35, 34, 39, 10, 22, 49, 25, 38, 22, 33, 47, 31, 14, 27, 18, 21, 0, 5, 17, 30, 14, 12, 46, 15, 20, 40, 16, 44, 35, 40, 22, 36, 34, 17, 9, 28, 41]],
    [{ temperature: 0.8, topP: 1, seed: 7 }, [40, 48, 3, 1, 21, 19, 38, 5, 26, 40, 31, 29, 34, 47, 2, 21, 48, 39, 16, 36, 19, 17, 16, 21, 41, 1, 23, 49, 26, 24, 7, 13, 32, 0, 29, 46, 33, 45, 43, 41]],
    [{ temperature: 1.3, topP: 0.5, seed: 123456789012 }, [14, 5, 10, 22, 6, 40, 31, 1, 49, 25, 17, 15, 6, 40, 45, 7, 20, 25, 23, 21, 12, 17, 16, 7, 40, 31, 1, 49, 47, 3, 8, 13, 47, 10, 29, 49, 47, 9, 14, 6]],
    [{ temperature: 2, topP: 0, seed: 99 }, [14, 48, 46, 43, 23, 34, 3, 41, 40, 7, 7, 34, 1, 24, 41, 28, 27, 7, 22, 36, 32, 18, 28, 48, 12, 1, 41, 33, 30, 46, 7, 26, 19, 16, 19, 6, 47, 4, 35, 27]],
  ];

  it.each(runcIds)("gives run.c's ids for %o", (opts, want) => {
    const s = new Sampler(V, opts);
    expect(want.map((_, step) => s.sample(runcLogits(V, step)))).toEqual(want);
  });

  it("is greedy (lowest id on ties) at temperature 0, whatever top-p and top-k say", () => {
    const logits = fc.array(fc.constantFrom(-1, 0, 0.5, 1), { minLength: 1, maxLength: 64 })
      .map((a) => Float32Array.from(a));
    const opts = fc.record({ topP, topK: fc.integer({ min: -1, max: 70 }), seed });
    fc.assert(fc.property(logits, opts, (x, o) => {
      expect(new Sampler(x.length, { ...o, temperature: 0 }).sample(x)).toBe(argmaxTies(x));
    }));
  });

  it("does not modify the caller's logits", () => {
    const opts = fc.record({ temperature, topP, topK: fc.integer({ min: -1, max: 70 }), seed });
    fc.assert(fc.property(gridLogits(64), opts, (x, o) => {
      const copy = x.slice();
      new Sampler(x.length, o).sample(x);
      expect(x).toEqual(copy);
    }));
  });

  it("repeats a sequence for a seed and changes it with the seed", () => {
    const run = (s: number): number[] => {
      const sampler = new Sampler(V, { temperature: 1, topP: 0.9, topK: 20, seed: s });
      return Array.from({ length: 200 }, (_, step) => sampler.sample(runcLogits(V, step)));
    };
    expect(run(7)).toEqual(run(7));
    expect(run(8)).not.toEqual(run(7));
  });

  // 40000 draws from a fixed seed over 8 tokens. Chi-square must stay under 30: for the at most 7 degrees of
  // freedom that is a p-value around 1e-4 for a correct sampler, while a wrong temperature (1 instead of 0.8),
  // a wrong truncation or renormalisation moves some probability by >= 0.01, which gives chi-square in the
  // hundreds at this many draws.
  const freqLogits = Float32Array.of(2, 1, 0.5, 0, -0.5, -1, 1.5, 0.25);
  it.each<[string, Omit<SamplerOptions, "seed">]>([
    ["temperature only", { temperature: 0.8, topP: 1 }],
    ["top-k 3", { temperature: 0.8, topP: 0, topK: 3 }],
    ["top-p 0.7", { temperature: 0.8, topP: 0.7 }],
    ["top-k 5 then top-p 0.8", { temperature: 0.8, topP: 0.8, topK: 5 }],
  ])("draws with the frequencies of the (truncated, renormalised) softmax: %s", (_, o) => {
    const opts = { ...o, seed: 12345 };
    // The exact support: no prefix sum lies within 0.01 of top-p for these logits, so rounding cannot move it.
    const support = allowed(freqLogits, opts, 0);
    expect(allowed(freqLogits, opts, 0.01)).toEqual(support);
    expect(allowed(freqLogits, opts, -0.01)).toEqual(support);
    const p = softmax64(freqLogits, opts.temperature).map((v, i) => (support.has(i) ? v : 0));
    const mass = p.reduce((a, b) => a + b, 0);
    const counts = new Array<number>(freqLogits.length).fill(0);
    const s = new Sampler(freqLogits.length, opts);
    for (let i = 0; i < 40000; i++) counts[s.sample(freqLogits)]++;
    expect(chiSquare(counts, p.map((v) => v / mass))).toBeLessThan(30);
  });

  it("never returns a token outside the nucleus (top-p)", () => {
    const opts = fc.record({ temperature, topP, seed });
    fc.assert(fc.property(gridLogits(64), opts, (x, o) => {
      const ok = allowed(x, o);
      const s = new Sampler(x.length, o);
      for (let i = 0; i < 10; i++) {
        const id = s.sample(x);
        if (!ok.has(id)) throw new Error(`id ${id} outside the nucleus ${[...ok]}`);
      }
    }), { numRuns: 300 });
  });

  it("never returns a token outside the top k (also with top-p)", () => {
    const topKCase = gridLogits(64).chain((x) => fc.tuple(fc.constant(x), fc.record({
      temperature,
      topP: fc.oneof(fc.constant(1), topP),
      topK: fc.integer({ min: -1, max: x.length + 1 }),
      seed,
    })));
    fc.assert(fc.property(topKCase, ([x, o]) => {
      const ok = allowed(x, o);
      const s = new Sampler(x.length, o);
      for (let i = 0; i < 10; i++) {
        const id = s.sample(x);
        if (!ok.has(id)) throw new Error(`id ${id} outside the allowed ${[...ok]}`);
      }
    }), { numRuns: 300 });
  });

  it("returns the most likely token when top-p is below every probability (where run.c reads out of bounds)", () => {
    // Uniform over 50 with top-p 0.01: every probability (0.02) is under run.c's cutoff (0.99 / 49), so its
    // candidate list is empty; the nucleus is the single most likely token, the lowest id on this tie.
    const s = new Sampler(50, { temperature: 1, topP: 0.01, seed: 3 });
    for (let i = 0; i < 20; i++) expect(s.sample(new Float32Array(50))).toBe(0);
  });

  it.each<[string, number, Partial<SamplerOptions>]>([
    ["vocabulary size 0", 0, {}],
    ["fractional vocabulary size", 2.5, {}],
    ["negative temperature", 4, { temperature: -0.1 }],
    ["NaN temperature", 4, { temperature: NaN }],
    ["infinite temperature", 4, { temperature: Infinity }],
    ["top-p above 1", 4, { topP: 1.5 }],
    ["negative top-p", 4, { topP: -0.1 }],
    ["NaN top-p", 4, { topP: NaN }],
    ["fractional top-k", 4, { topK: 2.5 }],
    ["seed 0", 4, { seed: 0 }],
    ["fractional seed", 4, { seed: 1.5 }],
  ])("rejects %s", (_, vocab, bad) => {
    expect(() => new Sampler(vocab, { temperature: 1, topP: 0.9, seed: 1, ...bad })).toThrow(DynactError);
  });

  it("rejects logits of the wrong length or that are not finite", () => {
    const s = new Sampler(4, { temperature: 1, topP: 0.9, seed: 1 });
    expect(() => s.sample(new Float32Array(5))).toThrow(DynactError);
    expect(() => s.sample(Float32Array.of(0, NaN, 1, 2))).toThrow(DynactError);
    expect(() => s.sample(Float32Array.of(0, Infinity, 1, 2))).toThrow(DynactError);
  });
});
