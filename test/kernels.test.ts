// Every wasm kernel (through its TS op) against its plain-TS reference, on random sizes, values and memory
// offsets. Tolerances are worst-case f32 error bounds, derived per op below, in units of U = 2^-24 (the unit
// roundoff of round-to-nearest f32): tight enough that a wrong index, stride or tail fails, loose enough
// that no seed is flaky. Ops built from one rounding per element must match bit for bit.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Engine } from "../engine/engine";
import { MemoryLimitError, ShapeError } from "../engine/errors";
import { argmax } from "../engine/ops/argmax";
import { attention } from "../engine/ops/attention";
import { add, mul, relu, silu } from "../engine/ops/elementwise";
import { matvec } from "../engine/ops/matvec";
import { rmsnorm } from "../engine/ops/rmsnorm";
import { rope } from "../engine/ops/rope";
import { softmax } from "../engine/ops/softmax";
import {
  addRef, argmaxRef, attentionRef, matvecRef, mulRef, reluRef, rmsnormRef, ropeAnglesRef, ropeRef, siluRef,
  softmaxRef,
} from "../engine/reference";
import { Tensor } from "../engine/tensor";
import {
  SENTINEL, TINY, U, anyFinite, bits, expectGuards, expectSameBits, expectWithin, harnessEngine, place, real, shift, size,
  placeBytes, splits, vec,
} from "./kernel-harness";

const RUNS = 300;

describe("matvec", () => {
  const matvecCase = fc.tuple(size(33), size(300)).chain(([d, n]) =>
    fc.record({ d: fc.constant(d), n: fc.constant(n), w: vec(d * n), x: vec(n), ranges: splits(d), shift }));

  it("matches the f64 reference within n·U·Σ|w·x|, and every row is the same bits in any row range", () => {
    fc.assert(fc.property(matvecCase, ({ d, n, w, x, ranges, shift }) => {
      const wt = place(0, [d, n], shift, w);
      const xt = place(1, [n], shift, x);
      const out = place(2, [d], shift);
      matvec(out, wt, xt);
      expectGuards("matvec", out);
      const full = out.read();
      // f32 products and sums in any order: |err| <= γ_n·Σ|w_k x_k| (γ_n ≈ n·U), plus U/2 for the reference's
      // own final rounding to f32, plus one subnormal per product for underflow. Relative to Σ|w·x|, not to
      // the result, so cancellation cannot make it flaky.
      const want = matvecRef(w, x, d, n);
      expectWithin("matvec", full, want, (r) => {
        let abs = 0;
        for (let k = 0; k < n; k++) abs += Math.abs(w[r * n + k] * x[k]);
        return (n + 1) * U * abs + n * TINY;
      });
      // The kernel promises per-row results independent of blocking (threads split rows arbitrarily).
      for (const [start, end] of ranges) {
        const part = place(2, [d], shift);
        matvec(part, wt, xt, start, end);
        expectGuards("matvec", part);
        const got = part.read();
        expectSameBits(`matvec rows [${start}, ${end})`, got.subarray(start, end), full.subarray(start, end));
        if (![...bits(got)].every((b, r) => (r >= start && r < end) || b === SENTINEL)) {
          throw new Error(`matvec rows [${start}, ${end}) wrote another row`);
        }
      }
    }), { numRuns: RUNS });
  });
});

describe("rmsnorm", () => {
  const rmsnormCase = size(300).chain((n) => fc.record({
    x: vec(n), w: vec(n), eps: fc.constantFrom(1e-5, 1e-6), inPlace: fc.boolean(), shift,
  }));

  it("matches the reference within (n/2 + 6)·U relative, in place and out of place", () => {
    fc.assert(fc.property(rmsnormCase, ({ x, w, eps, inPlace, shift }) => {
      const n = x.length;
      const xt = place(0, [n], shift, x);
      const wt = place(1, [n], shift, w);
      const out = inPlace ? xt : place(2, [n], shift);
      rmsnorm(out, xt, wt, eps);
      expectGuards("rmsnorm", out);
      // Σx² of positive terms: n·U relative; /n, +eps, 1/·: U each; sqrt halves what it is given;
      // scale·x and w·(…): U each; the reference's rounding: U. Total (n/2 + 6)·U; underflowing products
      // (subnormal x or w) add a few TINY.
      const want = rmsnormRef(x, w, Math.fround(eps));
      expectWithin("rmsnorm", out.read(), want, (i) => (n / 2 + 6) * U * Math.abs(want[i]) + 8 * TINY);
    }), { numRuns: RUNS });
  });
});

describe("rope", () => {
  const ropeCase = fc.record({
    headSize: fc.oneof(
      fc.constantFrom(2, 4, 6, 8, 10, 14, 16, 18, 34, 64, 128),
      fc.integer({ min: 1, max: 64 }).map((h) => 2 * h),
    ),
    nHeads: fc.integer({ min: 1, max: 8 }),
    pos: fc.oneof(fc.constantFrom(0, 1, 4095), fc.integer({ min: 0, max: 8192 })),
    theta: fc.oneof(fc.constantFrom(10000, 500000, 1e6), fc.double({ min: 100, max: 1e6, noNaN: true })),
    shift,
  }).chain((c) => vec(c.nHeads * c.headSize).map((x) => ({ ...c, x })));

  it("matches the reference within 3·U·(|x0·cos| + |x1·sin|) (resp. sin, cos for the odd element)", () => {
    fc.assert(fc.property(ropeCase, ({ headSize, nHeads, pos, theta, x, shift }) => {
      const { cos, sin } = ropeAnglesRef(pos, headSize, theta);
      const xt = place(0, [nHeads, headSize], shift, x);
      rope(xt, headSize, place(1, [headSize / 2], shift, cos), place(2, [headSize / 2], shift, sin));
      expectGuards("rope", xt);
      // Each output is x0·c ∓ x1·s of f32 inputs: two products and a sum, each rounded once (wasm has no fused
      // multiply-add), so |err| <= 2U·(|x0·c| + |x1·s|), plus the reference's rounding: 3U with slack;
      // relative to the terms, not the result, so cancellation is covered. Subnormal products lose a few TINY.
      const want = ropeRef(x, headSize, cos, sin);
      expectWithin("rope", xt.read(), want, (i) => {
        const j = (i % headSize) >> 1;
        const [x0, x1] = [x[i - (i % 2)], x[i - (i % 2) + 1]];
        const [c, s] = i % 2 === 0 ? [cos[j], sin[j]] : [sin[j], cos[j]];
        return 3 * U * (Math.abs(x0 * c) + Math.abs(x1 * s)) + 4 * TINY;
      });
    }), { numRuns: RUNS });
  });
});

describe("softmax", () => {
  const logits = fc.oneof(real, fc.float({ min: -100, max: 100, noNaN: true }));
  const softmaxCase = fc.tuple(size(300), fc.integer({ min: 0, max: 5 })).chain(([n, extra]) =>
    fc.record({ x: vec(n + extra, logits), n: fc.integer({ min: 0, max: n + extra }), shift }));

  it("matches the reference within (n + 4 + |x - max|)·U relative, over the first n values only", () => {
    fc.assert(fc.property(softmaxCase, ({ x, n, shift }) => {
      const xt = place(0, [x.length], shift, x);
      softmax(xt, n);
      expectGuards("softmax", xt);
      const got = xt.read();
      // Per element: x - max rounds (relative |x - max|·U in the exponential), Mathf.exp (musl's expf) is
      // within ~U, the f32 sum of n positive terms n·U, then 1/sum and the product U each, the reference's
      // rounding U. Outputs that underflow lose a few TINY. Values past n must be untouched.
      const head = x.subarray(0, n);
      const max = head.reduce((a, b) => Math.max(a, b), -Infinity);
      const want = softmaxRef(head);
      expectWithin("softmax", got.subarray(0, n), want, (i) =>
        (n + 4 + Math.abs(head[i] - max)) * U * want[i] + 4 * TINY);
      expectSameBits("softmax tail", got.subarray(n), x.subarray(n));
    }), { numRuns: RUNS });
  });
});

describe("elementwise", () => {
  const unary = (value: fc.Arbitrary<number>) =>
    size(300).chain((n) => fc.record({ x: vec(n, value), inPlace: fc.boolean(), shift }));
  const binary = size(300).chain((n) =>
    fc.record({ a: vec(n, anyFinite), b: vec(n, anyFinite), alias: fc.constantFrom("none", "a", "b"), shift }));

  it("silu matches the reference within 5·U relative (any finite input)", () => {
    fc.assert(fc.property(fc.oneof(unary(real), unary(anyFinite)), ({ x, inPlace, shift }) => {
      const xt = place(0, [x.length], shift, x);
      const out = inPlace ? xt : place(1, [x.length], shift);
      silu(out, xt);
      expectGuards("silu", out);
      // x / (1 + exp(-x)) in f32: exp ~1 U, the sum U, the quotient U, the reference's rounding U. Below
      // x ≈ -88.7, exp(-x) overflows f32 and the kernel returns -0 where the true value is under 3e-37
      // in magnitude (llama2.c computes it the same way): hence the absolute floor.
      const want = siluRef(x);
      expectWithin("silu", out.read(), want, (i) => 5 * U * Math.abs(want[i]) + 1e-36);
    }), { numRuns: RUNS });
  });

  it("relu is bit-exact (any finite input)", () => {
    fc.assert(fc.property(unary(anyFinite), ({ x, inPlace, shift }) => {
      const xt = place(0, [x.length], shift, x);
      const out = inPlace ? xt : place(1, [x.length], shift);
      relu(out, xt);
      expectGuards("relu", out);
      expectSameBits("relu", out.read(), reluRef(x));
    }), { numRuns: RUNS });
  });

  // One f32 rounding of an exact f64 product/sum of f32 inputs is the correctly rounded f32 result (double
  // rounding is innocuous for + and × since 53 >= 2·24 + 2), overflow to ±Infinity included: bit-exact.
  for (const [name, op, refOp] of [["mul", mul, mulRef], ["add", add, addRef]] as const) {
    it(`${name} is bit-exact, also with the output aliasing an input (any finite input)`, () => {
      fc.assert(fc.property(binary, ({ a, b, alias, shift }) => {
        const at = place(0, [a.length], shift, a);
        const bt = place(1, [b.length], shift, b);
        const out = alias === "a" ? at : alias === "b" ? bt : place(2, [a.length], shift);
        op(out, at, bt);
        expectGuards(name, out);
        expectSameBits(name, out.read(), refOp(a, b));
      }), { numRuns: RUNS });
    });
  }
});

describe("argmax", () => {
  // A small alphabet (with -0 and 0, which compare equal) makes ties the common case.
  const tied = size(300).chain((n) => vec(n, fc.constantFrom(-2, -1, -0, 0, 1, 2)));

  it("returns the lowest index of the maximum", () => {
    fc.assert(fc.property(fc.oneof(tied, size(300).chain((n) => vec(n))), shift, (x, shift) => {
      expect(argmax(place(0, [x.length], shift, x))).toBe(argmaxRef(x));
    }), { numRuns: RUNS });
  });

  it("breaks an explicit tie of the maximum towards the lowest of its positions", () => {
    const tieCase = size(300, 2).chain((n) => fc.record({
      x: vec(n),
      at: fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 2, maxLength: 5 }),
      shift,
    }));
    fc.assert(fc.property(tieCase, ({ x, at, shift }) => {
      for (const i of at) x[i] = 5; // above every value `real` produces
      expect(argmax(place(0, [x.length], shift, x))).toBe(Math.min(...at));
    }), { numRuns: RUNS });
  });

  it("never picks NaN, not even in first place", () => {
    expect(argmax(place(0, [5], 0, [NaN, 1, 3, NaN, 3]))).toBe(2);
  });
});

describe("attention", () => {
  const attentionCase = fc.record({
    nKvHeads: fc.integer({ min: 1, max: 4 }),
    group: fc.integer({ min: 1, max: 4 }),
    headSize: fc.oneof(fc.constantFrom(1, 3, 6, 8, 12, 16, 48), fc.integer({ min: 1, max: 64 })),
    seqLen: fc.integer({ min: 1, max: 16 }),
    attExtra: fc.integer({ min: 0, max: 3 }),
    shift,
  }).chain((c) => {
    const nHeads = c.nKvHeads * c.group;
    const kvDim = c.nKvHeads * c.headSize;
    return fc.record({
      nPos: fc.integer({ min: 1, max: c.seqLen }),
      q: vec(nHeads * c.headSize),
      k: vec(c.seqLen * kvDim),
      v: vec(c.seqLen * kvDim),
      headLists: fc.array(fc.subarray(Array.from({ length: nHeads }, (_, h) => h)), { minLength: 1, maxLength: 3 }),
      valid: fc.array(fc.boolean(), { minLength: c.nKvHeads * c.seqLen, maxLength: c.nKvHeads * c.seqLen }),
    }).map((r) => ({ ...c, ...r, nHeads, kvDim }));
  });

  it("matches the reference (GQA, any head size, any nPos) and every head is the same bits in any head range", () => {
    fc.assert(fc.property(attentionCase, (c) => {
      const { nHeads, nKvHeads, headSize, kvDim, seqLen, nPos, q, k, v, shift } = c;
      const shape = { nHeads, nKvHeads, headSize };
      const qt = place(0, [nHeads * headSize], shift, q);
      const kt = place(1, [seqLen, kvDim], shift, k);
      const vt = place(2, [seqLen, kvDim], shift, v);
      const att = place(3, [nHeads, seqLen + c.attExtra], shift);
      const out = place(4, [nHeads * headSize], shift);
      attention(out, qt, kt, vt, att, shape, nPos);
      expectGuards("attention", out);
      expectGuards("attention scratch", att);
      const full = out.read();
      const want = attentionRef(q, k, v, nHeads, nKvHeads, headSize, nPos);
      // Scores: an f32 dot of headSize terms and a division by an f32 sqrt: |Δs_t| <= (headSize + 3)·U·S_t,
      // S_t = Σ|q_i k_ti| / sqrt(headSize). Softmax turns score errors into relative probability errors of
      // at most 2·max|Δs|, and adds its own (nPos + 4 + |s_t - max|)·U (see softmax). The f32 weighted sum
      // of V adds (nPos + 2)·U of Σ_t p_t|v_ti| (products, sums, the reference's rounding). All relative to
      // Σ_t p_t|v_ti|; the factor 2 covers the second-order terms of these first-order bounds, 1e-30 underflow.
      const tol = new Float64Array(nHeads * headSize);
      for (let h = 0; h < nHeads; h++) {
        const g = Math.floor(h / c.group);
        const scores = new Float64Array(nPos);
        let maxDs = 0;
        for (let t = 0; t < nPos; t++) {
          let s = 0, abs = 0;
          for (let i = 0; i < headSize; i++) {
            const prod = q[h * headSize + i] * k[t * kvDim + g * headSize + i];
            s += prod;
            abs += Math.abs(prod);
          }
          scores[t] = s / Math.sqrt(headSize);
          maxDs = Math.max(maxDs, ((headSize + 3) * U * abs) / Math.sqrt(headSize));
        }
        const p = softmaxRef(Float32Array.from(scores));
        const spread = Math.max(...scores) - Math.min(...scores);
        const relP = 2 * maxDs + (nPos + 4 + spread) * U;
        for (let i = 0; i < headSize; i++) {
          let mass = 0;
          for (let t = 0; t < nPos; t++) mass += p[t] * Math.abs(v[t * kvDim + g * headSize + i]);
          tol[h * headSize + i] = 2 * (relP + (nPos + 2) * U) * mass + 1e-30;
        }
      }
      expectWithin("attention", full, want, (i) => tol[i]);
      // Any (ascending) list of heads gives each listed head the same bits and writes no other head.
      for (const list of c.headLists) {
        const part = place(4, [nHeads * headSize], shift);
        const fresh = place(3, [nHeads, seqLen + c.attExtra], shift); // no scores left from the full call
        attention(part, qt, kt, vt, fresh, shape, nPos, { idx: headList(list), count: list.length });
        expectGuards("attention", part);
        const got = part.read();
        for (let h = 0; h < nHeads; h++) {
          const [lo, hi] = [h * headSize, (h + 1) * headSize];
          if (list.includes(h)) expectSameBits(`attention head ${h} of [${list}]`, got.subarray(lo, hi), full.subarray(lo, hi));
          else if (![...bits(got.subarray(lo, hi))].every((b) => b === SENTINEL)) throw new Error(`attention [${list}] wrote head ${h}`);
        }
      }
    }), { numRuns: 200 });
  });

  it("with a KV hole map, a head is the same bits as attention over a cache of its KV head's valid positions only", () => {
    fc.assert(fc.property(attentionCase, (c) => {
      const { nHeads, nKvHeads, headSize, kvDim, seqLen, nPos, q, k, v, shift } = c;
      const shape = { nHeads, nKvHeads, headSize };
      const qt = place(0, [nHeads * headSize], shift, q);
      const att = place(3, [nHeads, seqLen + c.attExtra], shift);
      const validT = placeBytes(5, "u8", [nKvHeads, seqLen], shift, Uint8Array.from(c.valid, Number));
      const out = place(4, [nHeads * headSize], shift);
      const [kt, vt] = [place(1, [seqLen, kvDim], shift, k), place(2, [seqLen, kvDim], shift, v)];
      attention(out, qt, kt, vt, att, shape, nPos, null, validT);
      expectGuards("attention", out);
      const got = out.read();
      // The same heads through a head list (the skip policy's call), from fresh scratch.
      for (const list of c.headLists) {
        const part = place(4, [nHeads * headSize], shift);
        attention(part, qt, kt, vt, place(3, [nHeads, seqLen + c.attExtra], shift), shape, nPos, { idx: headList(list), count: list.length }, validT);
        const byList = part.read();
        for (let h = 0; h < nHeads; h++) {
          const [lo, hi] = [h * headSize, (h + 1) * headSize];
          if (list.includes(h)) expectSameBits(`attention head ${h} of [${list}] with holes`, byList.subarray(lo, hi), got.subarray(lo, hi));
          else if (![...bits(byList.subarray(lo, hi))].every((b) => b === SENTINEL)) throw new Error(`attention [${list}] wrote head ${h}`);
        }
      }
      for (let g = 0; g < nKvHeads; g++) {
        const kept = Array.from({ length: nPos }, (_, t) => t).filter((t) => c.valid[g * seqLen + t]);
        const heads = Array.from({ length: c.group }, (_, i) => g * c.group + i);
        if (kept.length === 0) {
          for (const h of heads) expect([...got.subarray(h * headSize, (h + 1) * headSize)].every((x) => x === 0)).toBe(true);
          continue;
        }
        const rows = (cache: Float32Array) => Float32Array.from(kept.flatMap((t) => [...cache.subarray(t * kvDim, (t + 1) * kvDim)]));
        const one = place(4, [nHeads * headSize], shift);
        attention(one, qt, place(1, [kept.length, kvDim], shift, rows(k)), place(2, [kept.length, kvDim], shift, rows(v)),
          att, shape, kept.length, { idx: headList(heads), count: heads.length });
        const want = one.read();
        for (const h of heads) {
          const [lo, hi] = [h * headSize, (h + 1) * headSize];
          expectSameBits(`attention head ${h}, valid positions [${kept}]`, got.subarray(lo, hi), want.subarray(lo, hi));
        }
      }
    }), { numRuns: 200 });
  });

  // An i32 list of head ids (at most 16 heads here), in a tensor of its own so no scratch slot is disturbed.
  let listTensor: Tensor | undefined;
  function headList(ids: readonly number[]): Tensor {
    listTensor ??= harnessEngine().tensor([16], "i32");
    listTensor.i32().set(ids);
    return listTensor;
  }
});

describe("shape checks", () => {
  const t = (...shape: number[]): Tensor => place(5, shape, 0);

  it("matvec", () => {
    expect(() => matvec(t(3), t(3, 4), t(5))).toThrow(ShapeError);
    expect(() => matvec(t(3), t(3, 4), t(4), 2, 4)).toThrow(ShapeError);
    expect(() => matvec(t(3), t(3, 4), Engine.create(64).tensor([4]))).toThrow(ShapeError);
  });
  it("rmsnorm", () => expect(() => rmsnorm(t(4), t(4), t(5), 1e-5)).toThrow(ShapeError));
  it("rope", () => {
    expect(() => rope(t(2, 6), 3, t(1), t(1))).toThrow(ShapeError);
    expect(() => rope(t(2, 6), 6, t(3), t(2))).toThrow(ShapeError);
  });
  it("softmax", () => expect(() => softmax(t(4), 5)).toThrow(ShapeError));
  it("silu", () => expect(() => silu(t(4), t(5))).toThrow(ShapeError));
  it("relu", () => expect(() => relu(t(4), t(5))).toThrow(ShapeError));
  it("mul", () => expect(() => mul(t(4), t(4), t(3))).toThrow(ShapeError));
  it("add", () => expect(() => add(t(3), t(4), t(4))).toThrow(ShapeError));
  it("argmax", () => expect(() => argmax(t(0))).toThrow(ShapeError));
  it("attention", () => {
    const shape = { nHeads: 4, nKvHeads: 2, headSize: 3 };
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 5), { ...shape, nKvHeads: 3 }, 1)).toThrow(ShapeError);
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 5), shape, 6)).toThrow(ShapeError);
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 2), shape, 3)).toThrow(ShapeError);
    expect(() => attention(t(12), t(12), t(5, 6), t(4, 6), t(4, 5), shape, 1)).toThrow(ShapeError);
    const five = placeBytes(0, "i32", [1], 0, new Uint8Array(Int32Array.of(5).buffer));
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 5), shape, 1, { idx: five, count: 1 })).toThrow(ShapeError);
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 5), shape, 1, { idx: five, count: 2 })).toThrow(ShapeError);
    const twice = placeBytes(0, "i32", [2], 0, new Uint8Array(Int32Array.of(1, 1).buffer));
    expect(() => attention(t(12), t(12), t(5, 6), t(5, 6), t(4, 5), shape, 1, { idx: twice, count: 2 })).toThrow(/ascending/);
  });
});

describe("engine memory", () => {
  it("refuses more than wasm32 can address", () => {
    expect(() => Engine.create(2 ** 32)).toThrow(MemoryLimitError);
    expect(() => Engine.create(5 * 2 ** 30)).toThrow(MemoryLimitError);
    expect(() => harnessEngine().tensor([2 ** 30])).toThrow(MemoryLimitError);
  });

  it("throws MemoryLimitError when the arena is exhausted, keeping what it handed out", () => {
    const small = Engine.create(16384);
    const held = Array.from({ length: 4 }, (_, i) => small.from(new Float32Array(1024).fill(i)));
    let more = 0;
    expect(() => {
      for (;;) {
        small.tensor([1024]);
        if (++more > 64) return; // a 16 KiB arena did not run out: fail below
      }
    }).toThrow(MemoryLimitError);
    held.forEach((t, i) => expect(t.read().every((v) => v === i)).toBe(true));
  });
});
