// Half-precision and quantized weights: engine/quant.ts (encodings, checked against hand-computed bytes and
// independent oracles) and the wasm matvec kernels for f16, bf16, q8_0 and q4_0 against the dequantize-then-f32
// reference, on random shapes, values, offsets and row ranges. Tolerances in units of U = 2^-24, derived below.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { activationBytes, type DType } from "../engine/dtype";
import { Engine } from "../engine/engine";
import { MemoryLimitError, ShapeError } from "../engine/errors";
import { matvec, matvecBlocks } from "../engine/ops/matvec";
import { sum } from "../engine/ops/sum";
import {
  bf16ToF32, dequantize, f16ToF32, f32ToBf16, f32ToF16, quantize, quantizeQ4_0, quantizeQ8_0,
} from "../engine/quant";
import { matvecDTypeRef, matvecRef } from "../engine/reference";
import type { Tensor } from "../engine/tensor";
import {
  SENTINEL, TINY, U, anyFinite, bits, expectGuards, expectSameBits, expectWithin, harnessEngine, place, placeBytes, shift,
  size, splits, vec,
} from "./kernel-harness";

const RUNS = 200;
/** Largest row of the quantized cases, in 32-value blocks. */
const MAX_BLOCKS = 10;

beforeAll(() => harnessEngine().reserveScratch(activationBytes(MAX_BLOCKS * 32)));

const bitsToF32 = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0];
const f32Bits = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0];
const hex = (b: Uint8Array): string => Array.from(b, (v) => v.toString(16).padStart(2, "0")).join(" ");

describe("f16 and bf16 encodings", () => {
  it("decode known bit patterns", () => {
    const cases: [number, number][] = [
      [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x3555, 0.333251953125], [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x7c00, Infinity], [0xfc00, -Infinity], [0x8000, -0],
    ];
    for (const [h, v] of cases) {
      expect(f16ToF32(h)).toBe(v);
      expect(f32ToF16(v)).toBe(h);
    }
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0xfc01)).toBeNaN();
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc049)).toBe(-3.140625);
    expect(bf16ToF32(0xff80)).toBe(-Infinity);
    expect(bf16ToF32(0x0001)).toBe(bitsToF32(0x00010000)); // a subnormal
  });

  it("encode known values: Math.fround's semantics at 16 bits (nearest even, overflow to inf, NaN stays NaN)", () => {
    // f16: 0.1 = 0x3dcccccd keeps 10 of its mantissa bits 1001100110|0110011001101, rounding down to 0x2e66;
    // 65519 stays 65504, 65520 is the midpoint to 65536 and goes to the even neighbour, inf; 2^-25 is the
    // midpoint 0..2^-24 and goes to 0.
    const f16Cases: [number, number][] = [
      [0.1, 0x2e66], [-0.1, 0xae66], [65519, 0x7bff], [65520, 0x7c00], [1e10, 0x7c00], [-1e10, 0xfc00],
      [2 ** -25, 0x0000], [bitsToF32(f32Bits(2 ** -25) + 1), 0x0001], [3 * 2 ** -25, 0x0002], [-0, 0x8000],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1e-30, 0], [-1e-30, 0x8000],
    ];
    for (const [x, h] of f16Cases) expect(f32ToF16(x), `f16(${x})`).toBe(h);
    expect(f32ToF16(NaN)).toBe(0x7e00);
    expect(f32ToF16(bitsToF32(0xff800001))).toBe(0xfe00);
    // bf16: 0.1 = 0x3dcc|cccd rounds up; 1 + 2^-8 = 0x3f80|8000 is a tie to the even 0x3f80, 1 + 3·2^-8 to 0x3f82;
    // the largest f32 rounds to inf; NaN stays NaN with the quiet bit set.
    const bf16Cases: [number, number][] = [
      [1, 0x3f80], [0.1, 0x3dcd], [-2, 0xc000], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82],
      [bitsToF32(0x7f7fffff), 0x7f80], [-Infinity, 0xff80], [-0, 0x8000], [bitsToF32(0x00018000), 0x0002],
    ];
    for (const [x, h] of bf16Cases) expect(f32ToBf16(x), `bf16(${x})`).toBe(h);
    expect(f32ToBf16(bitsToF32(0x7f800001))).toBe(0x7fc0);
    expect(f32ToBf16(bitsToF32(0xffc12345))).toBe(0xffc1);
  });

  it("f16: every finite value and every midpoint between neighbours rounds as round-to-nearest-even says", () => {
    for (let h = 0; h < 0x7c00; h++) {
      const v = f16ToF32(h);
      expect(f32ToF16(v)).toBe(h);
      expect(f32ToF16(-v)).toBe(h | 0x8000);
      // The midpoint to the next value (65536 past the largest finite one) has at most 12 significant bits: an
      // exact f32. Ties go to the even bit pattern; the f32 just below/above go down/up.
      const next = h === 0x7bff ? 65536 : f16ToF32(h + 1);
      const mid = (v + next) / 2;
      expect(f32ToF16(mid)).toBe(h % 2 === 0 ? h : h + 1);
      expect(f32ToF16(bitsToF32(f32Bits(mid) - 1))).toBe(h);
      expect(f32ToF16(bitsToF32(f32Bits(mid) + 1))).toBe(h + 1);
    }
  });

  it("bf16: any finite f32 goes to the nearer of its two bf16 neighbours, ties to even", () => {
    fc.assert(fc.property(anyFinite, (x) => {
      const h = f32ToBf16(x);
      const down = f32Bits(x) >>> 16;
      expect([down, down + 1]).toContain(h);
      // Past the largest bf16 the next value would be ±2^128 (IEEE overflow rounds as if the exponent went on).
      const dv = bf16ToF32(down);
      const uv = (down & 0x7fff) === 0x7f7f ? Math.sign(x) * 2 ** 128 : bf16ToF32(down + 1);
      const [dd, du] = [Math.abs(x - dv), Math.abs(uv - x)];
      expect(h).toBe(dd < du || (dd === du && down % 2 === 0) ? down : down + 1);
    }), { numRuns: 2000 });
  });
});

// Per-value error of Q8_0 (exact f32 x against its dequantized value), from one block's own numbers: q is
// round(x/d) up to the roundings of 1/d and x·(1/d) (2U relative on |x/d| <= 127: under 1e-4 of a step), and
// the stored scale d16 = f16(d) adds |d16 - d|·|q| <= |d16 - d|·127.
function q8Bound(block: Float32Array): number {
  const d = Math.fround(block.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127);
  return d * (0.5 + 1e-4) + 127 * Math.abs(f16ToF32(f32ToF16(d)) - d);
}

// Q4_0: d = max/-8 maps the block onto [-8, 8]; values round to the nearest of -8..7 (half a step) except that
// x/d = 8 would need 16 and is clamped to 15: one step. The f16 scale adds |d16 - d|·8.
function q4Bound(block: Float32Array, v: number): number {
  let max = 0;
  for (const x of block) if (Math.abs(x) > Math.abs(max)) max = x;
  const d = Math.fround(max / -8);
  const steps = d !== 0 && v / d > 7.5 ? 1 : 0.5;
  return Math.abs(d) * (steps + 1e-4) + 8 * Math.abs(f16ToF32(f32ToF16(d)) - d);
}

describe("Q8_0 and Q4_0 encodings", () => {
  // Realistic, small (f16-subnormal scales) and wide values; beyond ±5e5 a Q4_0 scale (Q8_0: ±8e6) overflows
  // f16, as in ggml: the formats cannot hold such blocks.
  const small = fc.float({ min: Math.fround(-1e-3), max: Math.fround(1e-3), noNaN: true });
  const wide = fc.float({ min: -5e5, max: 5e5, noNaN: true });
  const blocks = fc.integer({ min: 1, max: 4 }).chain((nb) =>
    fc.oneof(vec(32 * nb), vec(32 * nb, small), vec(32 * nb, wide)));

  it("Q8_0 of a hand-computed block: amax 127 gives d = 1 (f16 0x3c00), q = round half away from zero", () => {
    const x = new Float32Array(32);
    x.set([127, -127, 2.5, -2.5, 0.49999997, -0.5, 1.5, 0, -3.7]);
    const bytes = quantizeQ8_0(x);
    expect(hex(bytes.subarray(0, 11))).toBe("00 3c 7f 81 03 fd 00 ff 02 00 fc");
    expect(bytes.subarray(11).every((b) => b === 0)).toBe(true);
    expect(hex(quantizeQ8_0(new Float32Array(32)).subarray(0, 3))).toBe("00 00 00");
  });

  it("Q4_0 of hand-computed blocks: d = max/-8 with max's sign, q = min(15, trunc(x/d + 8.5)), j | (j+16) << 4", () => {
    // max = -16: d = 2 (0x4000), id = 0.5. x0 = -16 -> 0.5 -> 0; x16 = 15 -> 16 -> clamped 15: byte 0xf0.
    // x1 = 14 -> 15.5 -> 15; x17 = 1 -> 9: 0x9f. x2 = -1 -> 8; x18 = 0 -> 8: 0x88. Others 0 -> 8: 0x88.
    const a = new Float32Array(32);
    a[0] = -16; a[16] = 15; a[1] = 14; a[17] = 1; a[2] = -1;
    expect(hex(quantizeQ4_0(a).subarray(0, 6))).toBe("00 40 f0 9f 88 88");
    // max = +16: d = -2 (0xc000), id = -0.5: x0 = 16 -> 0.5 -> 0, x16 = -16 -> 16.5 -> clamped 15: 0xf0;
    // x1 = 3 -> 7 ; x17 = -3 -> 10: 0xa7.
    const b = new Float32Array(32);
    b[0] = 16; b[16] = -16; b[1] = 3; b[17] = -3;
    expect(hex(quantizeQ4_0(b).subarray(0, 5))).toBe("00 c0 f0 a7 88");
    expect(Array.from(dequantize("q4_0", quantizeQ4_0(b), 32).subarray(0, 2))).toEqual([16, 2]);
    // All zeros: max = 0, d = 0/-8 = -0 (f16 0x8000, as in C), id = 0, every q = trunc(8.5) = 8.
    expect(hex(quantizeQ4_0(new Float32Array(32)).subarray(0, 3))).toBe("00 80 88");
  });

  it("Q8_0 round trip: every value within half a step (plus the f16 scale's rounding)", () => {
    fc.assert(fc.property(blocks, (x) => {
      const back = dequantize("q8_0", quantizeQ8_0(x), x.length);
      for (let b = 0; b < x.length / 32; b++) {
        const block = x.subarray(32 * b, 32 * b + 32);
        const tol = q8Bound(block);
        for (let j = 0; j < 32; j++) {
          const i = 32 * b + j;
          if (!(Math.abs(back[i] - x[i]) <= tol)) throw new Error(`x[${i}] = ${x[i]} came back as ${back[i]} (tol ${tol})`);
        }
      }
    }), { numRuns: 500 });
  });

  it("Q4_0 round trip: every value within half a step (one at the clamped end), plus the f16 scale's rounding", () => {
    fc.assert(fc.property(blocks, (x) => {
      const back = dequantize("q4_0", quantizeQ4_0(x), x.length);
      for (let i = 0; i < x.length; i++) {
        const tol = q4Bound(x.subarray(i & ~31, (i & ~31) + 32), x[i]);
        if (!(Math.abs(back[i] - x[i]) <= tol)) throw new Error(`x[${i}] = ${x[i]} came back as ${back[i]} (tol ${tol})`);
      }
    }), { numRuns: 500 });
  });

  it("f16 and bf16 round trips are the per-value encodings, f32 is the identity", () => {
    fc.assert(fc.property(size(100).chain((n) => vec(n, anyFinite)), (x) => {
      expect(Array.from(dequantize("f16", quantize("f16", x), x.length)))
        .toEqual(Array.from(x, (v) => f16ToF32(f32ToF16(v))));
      expect(Array.from(dequantize("bf16", quantize("bf16", x), x.length)))
        .toEqual(Array.from(x, (v) => bf16ToF32(f32ToBf16(v))));
      expectSameBits("f32", dequantize("f32", quantize("f32", x), x.length), x);
    }), { numRuns: 200 });
  });

  it("refuses what it cannot encode", () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(ShapeError);
    expect(() => dequantize("q4_0", new Uint8Array(17), 32)).toThrow(ShapeError);
    expect(() => dequantize("i32", new Uint8Array(4), 1)).toThrow(ShapeError);
  });
});

describe("quantize_q8_0 kernel", () => {
  const kernels = () => harnessEngine().kernels;

  it("rounds the hand-computed block as roundf does (ties away from zero)", () => {
    const x = new Float32Array(32);
    x.set([127, -127, 2.5, -2.5, 0.49999997, -0.5, 1.5, 0, -3.7]);
    const q = placeBytes(1, "q8_0", [32], 1);
    kernels().quantize_q8_0(q.offset, place(0, [32], 0, x).offset, 32);
    expect(hex(q.bytesView().subarray(0, 11))).toBe("00 3c 7f 81 03 fd 00 ff 02 00 fc");
  });

  it("writes exactly the bytes of quantizeQ8_0 (any finite x)", () => {
    const input = fc.integer({ min: 1, max: MAX_BLOCKS }).chain((nb) =>
      fc.record({ x: fc.oneof(vec(32 * nb), vec(32 * nb, anyFinite)), shift, byteShift: fc.integer({ min: 0, max: 3 }) }));
    fc.assert(fc.property(input, ({ x, shift, byteShift }) => {
      const xt = place(0, [x.length], shift, x);
      const q = placeBytes(1, "q8_0", [x.length], byteShift);
      kernels().quantize_q8_0(q.offset, xt.offset, x.length);
      expectGuards("quantize_q8_0", q);
      expect(hex(q.bytesView())).toBe(hex(quantizeQ8_0(x)));
    }), { numRuns: RUNS });
  });
});

describe("f16/bf16 weights in the kernels decode every bit pattern", () => {
  // Row r holds pattern r in column c and 1.0 elsewhere, x is 1 at c and 0 elsewhere, so out[r] is the pattern's
  // value exactly (plus +0s, which turn -0 into +0; inf and NaN stay so). Every column c of 15 reaches each
  // lane of the 8-wide SIMD step, the 4-wide step and the scalar tail; four consecutive patterns share a
  // step, so f16 takes its normal-only path where all four are normal and the exact one elsewhere.
  const n = 15;
  const rows = 8192;
  for (const [dtype, decode, one] of [["f16", f16ToF32, 0x3c00], ["bf16", bf16ToF32, 0x3f80]] as const) {
    it(dtype, () => {
      const out = place(2, [rows], 0);
      for (let c = 0; c < n; c++) {
        const x = place(1, [n], 0, Float32Array.from({ length: n }, (_, k) => (k === c ? 1 : 0)));
        for (let first = 0; first < 0x10000; first += rows) {
          const w = new Uint16Array(rows * n).fill(one);
          for (let r = 0; r < rows; r++) w[r * n + c] = first + r;
          matvec(out, placeBytes(0, dtype, [rows, n], 0, new Uint8Array(w.buffer)), x);
          const got = out.read();
          for (let r = 0; r < rows; r++) {
            const want = decode(first + r);
            const ok = Number.isNaN(want) ? Number.isNaN(got[r]) : got[r] === want;
            if (!ok) throw new Error(`${dtype} 0x${(first + r).toString(16)} in column ${c}: got ${got[r]}, want ${want}`);
          }
        }
      }
    });
  }
});

/** Checks one matvec case: against `want` within tol, guards, and bit-identical rows in every row range. */
function checkMatvec(
  op: string, wt: Tensor, x: Float32Array, shiftX: number, ranges: [number, number][],
  want: Float32Array, tol: (r: number) => number,
): void {
  const [d, n] = wt.shape;
  const xt = place(1, [n], shiftX, x);
  const out = place(2, [d], shiftX);
  matvec(out, wt, xt);
  expectGuards(op, out);
  const full = out.read();
  expectWithin(op, full, want, tol);
  // Threads split rows arbitrarily: a row's bits must not depend on the range that computes it.
  for (const [start, end] of ranges) {
    const part = place(2, [d], shiftX);
    matvec(part, wt, xt, start, end);
    expectGuards(op, part);
    const got = part.read();
    expectSameBits(`${op} rows [${start}, ${end})`, got.subarray(start, end), full.subarray(start, end));
    if (![...bits(got)].every((b, r) => (r >= start && r < end) || b === SENTINEL)) {
      throw new Error(`${op} rows [${start}, ${end}) wrote another row`);
    }
  }
}

/** Σ_k |w_rk · x_k| for row r. */
function absDot(w: Float32Array, x: Float32Array, r: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += Math.abs(w[r * n + k] * x[k]);
  return s;
}

describe("matvec with f16/bf16 weights", () => {
  // Weights: realistic values rounded to the dtype (f16 then has subnormals and zeros from small values), or any
  // finite f16 bit pattern (up to ±65504).
  const finiteF16 = fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & 0x7c00) !== 0x7c00).map(f16ToF32);
  const halfCase = (dtype: "f16" | "bf16") => fc.tuple(size(33), size(300)).chain(([d, n]) => fc.record({
    d: fc.constant(d), n: fc.constant(n),
    w: dtype === "f16" ? fc.oneof(vec(d * n), vec(d * n, finiteF16)) : vec(d * n),
    x: vec(n), ranges: splits(d), shift, wShift: fc.integer({ min: 0, max: 3 }),
  }));

  for (const dtype of ["f16", "bf16"] as const) {
    it(`${dtype}: matches dequantize-then-f64 within (n+1)·U·Σ|w·x| + n·TINY, rows the same bits in any range`, () => {
      fc.assert(fc.property(halfCase(dtype), ({ d, n, w, x, ranges, shift, wShift }) => {
        const bytes = quantize(dtype, w);
        const wt = placeBytes(0, dtype, [d, n], 2 * wShift, bytes);
        // The decoded weights are exact f32 values, so this is matvec_f32's bound: f32 products and sums in any
        // order are within γ_n·Σ|w_k x_k| (γ_n ≈ n·U), the reference's final rounding adds U/2, and each
        // product that underflows loses at most one subnormal.
        const wd = dequantize(dtype, bytes, d * n);
        checkMatvec(dtype, wt, x, shift, ranges, matvecDTypeRef(dtype, bytes, x, d, n),
          (r) => (n + 1) * U * absDot(wd, x, r, n) + n * TINY);
      }), { numRuns: RUNS });
    });
  }
});

describe("matvec with q8_0/q4_0 weights", () => {
  const quantCase = fc.tuple(size(33), fc.integer({ min: 1, max: MAX_BLOCKS })).chain(([d, nb]) => fc.record({
    d: fc.constant(d), n: fc.constant(32 * nb),
    // Realistic weights, or sparse ones (whole zero blocks: d = 0).
    w: fc.oneof(vec(d * 32 * nb), vec(d * 32 * nb, fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 1.5, -0.25))),
    x: fc.oneof(vec(32 * nb), vec(32 * nb, fc.float({ min: -100, max: 100, noNaN: true }))),
    ranges: splits(d), shift, wShift: fc.integer({ min: 0, max: 3 }),
  }));

  for (const dtype of ["q8_0", "q4_0"] as const) {
    it(`${dtype}: matches the reference with x rounded through Q8_0, within (nb+3)·U·Σ|w·xq|`, () => {
      fc.assert(fc.property(quantCase, ({ d, n, w, x, ranges, shift, wShift }) => {
        const bytes = quantize(dtype, w);
        const wt = placeBytes(0, dtype, [d, n], wShift, bytes);
        // Per block the kernel's integer dot S_b is exact (|S_b| <= 32·127·127 < 2^24, so also its f32), and so
        // are the dequantized w and xq (an f16 scale times a small integer) and the reference's f64 products.
        // The kernel's error: d_w·d_x and S_b·(d_w d_x) round once each (2U of the term), the f32 sum of nb
        // terms (nb - 1)·U of Σ|terms|, the reference's own rounding U/2: under (nb + 3)·U·Σ_k|w_k xq_k|.
        // No term underflows: f16 scales are >= 2^-24, so d_w·d_x >= 2^-48.
        const wd = dequantize(dtype, bytes, d * n);
        const xq = dequantize("q8_0", quantizeQ8_0(x), n);
        checkMatvec(dtype, wt, x, shift, ranges, matvecDTypeRef(dtype, bytes, x, d, n),
          (r) => (n / 32 + 3) * U * absDot(wd, xq, r, n));
      }), { numRuns: RUNS });
    });

    it(`${dtype}: against exact f32 x, off by no more than the kernel bound plus Σ|w|·(Q8_0 error of x)`, () => {
      fc.assert(fc.property(quantCase, ({ d, n, w, x, shift, wShift }) => {
        const bytes = quantize(dtype, w);
        const wt = placeBytes(0, dtype, [d, n], wShift, bytes);
        const out = place(2, [d], shift);
        matvec(out, wt, place(1, [n], shift, x));
        const wd = dequantize(dtype, bytes, d * n);
        const xq = dequantize("q8_0", quantizeQ8_0(x), n);
        // |y - Σ w x| <= |y - Σ w xq| + Σ|w|·|x - xq|: the bound above plus each x's Q8_0 error (q8Bound), which
        // also dwarfs the reference's final rounding of Σ|w||x - xq|.
        const xErr = Float64Array.from(x, (_, k) => q8Bound(x.subarray(k & ~31, (k & ~31) + 32)));
        expectWithin(`${dtype} vs exact x`, out.read(), matvecRef(wd, x, d, n), (r) => {
          let spill = 0;
          for (let k = 0; k < n; k++) spill += Math.abs(wd[r * n + k]) * xErr[k];
          return (n / 32 + 3) * U * absDot(wd, xq, r, n) + spill;
        });
      }), { numRuns: RUNS });
    });
  }
});

describe("sum_f32", () => {
  it("sums small integers exactly (any length, any offset)", () => {
    fc.assert(fc.property(size(300).chain((n) => vec(n, fc.integer({ min: -1000, max: 1000 }))), shift, (x, s) => {
      expect(sum(place(0, [x.length], s, x))).toBe(x.reduce((a, b) => a + b, 0));
    }), { numRuns: RUNS });
  });
});

describe("matvecBlocks", () => {
  it("computes the listed blocks of rows with the full product's bits and writes no other row (every dtype)", () => {
    const dtypes = ["f32", "f16", "bf16", "q8_0", "q4_0"] as const;
    fc.assert(fc.property(fc.constantFrom(...dtypes), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 4 }), fc.nat(99), fc.integer({ min: 0, max: 63 }), (dtype, blockRows, nBlocks, nb, seed, mask) => {
        const [d, n] = [blockRows * nBlocks, 32 * nb];
        const w = placeBytes(0, dtype, [d, n], 0, quantize(dtype, Float32Array.from({ length: d * n }, (_, i) => Math.sin(i * 0.7 + seed))));
        const x = place(1, [n], 0, Float32Array.from({ length: n }, (_, i) => Math.cos(i + seed)));
        const full = place(2, [d], 0);
        matvec(full, w, x);
        const blocks = Array.from({ length: nBlocks }, (_, b) => b).filter((b) => (mask >> b) & 1).reverse();
        const part = place(3, [d], 0);
        matvecBlocks(part, w, x, blocks, blocks.length, blockRows);
        expectGuards("matvecBlocks", part);
        const [want, got] = [bits(full.read()), bits(part.read())];
        for (let r = 0; r < d; r++) {
          expect(got[r]).toBe(blocks.includes(Math.floor(r / blockRows)) ? want[r] : SENTINEL);
        }
      }), { numRuns: RUNS });
  });

  it("checks every block before computing any", () => {
    const w = placeBytes(0, "f32", [4, 32], 0);
    const x = place(1, [32], 0, new Float32Array(32).fill(1));
    const out = place(3, [4], 0);
    expect(() => matvecBlocks(out, w, x, [0, 2], 2, 2)).toThrow(ShapeError);
    expect(() => matvecBlocks(out, w, x, [0], 2, 2)).toThrow(ShapeError);
    expect(() => matvecBlocks(out, w, x, [0], 1, 0)).toThrow(ShapeError);
    expect([...bits(out.read())].every((b) => b === SENTINEL)).toBe(true);
  });
});

describe("quantize_act_q8_0 / _q4_0", () => {
  // Both hold quantize_q8_0's values q and scale d, per block b of 32: Q8_0's as they are; Q4_0's as
  // 16·q[0..16) - q[16..32) then q[16..32), d/16 and 16 times the nibble offset term -8·Σq.
  it("write quantize_q8_0's values, each in its products' layout", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: MAX_BLOCKS }).chain((nb) => vec(32 * nb)), (x) => {
      const n = x.length;
      const nb = n / 32;
      const engine = harnessEngine();
      const xt = place(1, [n], 0, x);
      const ref = quantizeQ8_0(x);
      const want = dequantize("q8_0", ref, n);
      for (const q4 of [false, true]) {
        const a = placeBytes(3, "u8", [activationBytes(n)], 0);
        (q4 ? engine.kernels.quantize_act_q4_0 : engine.kernels.quantize_act_q8_0)(a.offset, xt.offset, n);
        expectGuards(q4 ? "quantize_act_q4_0" : "quantize_act_q8_0", a);
        const view = new DataView(engine.memory.buffer, a.offset, activationBytes(n));
        for (let b = 0; b < nb; b++) {
          const q = new Int8Array(ref.buffer, ref.byteOffset + 34 * b + 2, 32);
          const scale = view.getFloat32(64 * nb + 4 * b, true) * (q4 ? 16 : 1);
          let sum = 0;
          for (let j = 0; j < 32; j++) {
            const stored = view.getInt16(64 * b + 2 * j, true);
            expect(stored).toBe(q4 && j < 16 ? 16 * q[j]! - q[j + 16]! : q[j]);
            expect(Math.fround(scale * q[j]!) === want[32 * b + j]).toBe(true); // (-0 and 0 alike)
            sum += q[j]!;
          }
          if (q4) expect(view.getInt32(68 * nb + 4 * b, true)).toBe((-128 * sum) | 0);
        }
      }
    }), { numRuns: 150 });
  });
});

describe("mul_add_f32 (the arithmetic roofline)", () => {
  it("runs every round of its ten chains unfused, in f32, and sums them in its fixed order", () => {
    const m = Math.fround(0.999), c = Math.fround(0.001);
    fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: -50, max: 50 }), (iters, seed) => {
      const a = Array.from({ length: 10 }, (_, i) => {
        let v = Math.fround(seed + i);
        for (let k = 0; k < iters; k++) v = Math.fround(Math.fround(v * m) + c);
        return v;
      });
      const f = Math.fround;
      const s = f(f(f(f(a[0] + a[1]) + f(a[2] + a[3])) + f(f(a[4] + a[5]) + f(a[6] + a[7]))) + f(a[8] + a[9]));
      expect(harnessEngine().kernels.mul_add_f32(iters, seed)).toBe(f(f(s + s) + f(s + s)));
    }), { numRuns: 100 });
  });
});

describe("matvec dtype checks", () => {
  it("refuses i32 weights, non-f32 x or out, and quantized weights without reserved scratch", () => {
    const e = harnessEngine();
    const w = (dtype: DType) => placeBytes(0, dtype, [2, 32], 0);
    expect(() => matvec(place(2, [2], 0), w("i32"), place(1, [32], 0))).toThrow(ShapeError);
    expect(() => matvec(place(2, [2], 0), w("f16"), placeBytes(1, "f16", [32], 0))).toThrow(ShapeError);
    expect(() => matvec(placeBytes(2, "bf16", [2], 0), w("bf16"), place(1, [32], 0))).toThrow(ShapeError);
    expect(() => matvec(place(2, [2], 0), w("q8_0"), place(1, [31], 0))).toThrow(ShapeError);
    expect(e.scratch("test", 100)).toBeGreaterThan(0);
    const bare = Engine.create(1 << 16);
    expect(() => matvec(bare.tensor([2]), bare.tensor([2, 32], "q4_0"), bare.tensor([32]))).toThrow(MemoryLimitError);
  });
});
