// The row-interleaved quantized layouts (engine/repack.ts, kernels-as/matvec_quant.ts): packing is a lossless
// permutation, and the products over q8_0_r4 / q4_0_r4 weights give the plain layout's results bit for bit — the
// same integer dots and the same f32 accumulation per row, only the addresses differ — in every valid row range,
// batched or not. The activation quantizer writes exactly quantize_q8_0's values.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { activationBytes, tensorBytes } from "../engine/dtype";
import { ShapeError } from "../engine/errors";
import { matmul } from "../engine/ops/matmul";
import { matvec } from "../engine/ops/matvec";
import { dequantize, quantize, quantizeQ8_0 } from "../engine/quant";
import { dequantizeMatrix, interleavedType, packRows4, unpackRows4 } from "../engine/repack";
import { expectGuards, expectSameBits, harnessEngine, place, placeBytes, shift, size, vec } from "./kernel-harness";

const MAX_BLOCKS = 8;
const MAX_TOKENS = 5;
beforeAll(() => harnessEngine().reserveScratch(MAX_TOKENS * activationBytes(MAX_BLOCKS * 32)));

const quantCase = fc.tuple(fc.constantFrom("q8_0", "q4_0") as fc.Arbitrary<"q8_0" | "q4_0">, size(30),
  fc.integer({ min: 1, max: MAX_BLOCKS })).chain(([dtype, d, nb]) => fc.record({
  dtype: fc.constant(dtype), d: fc.constant(d), n: fc.constant(32 * nb),
  // Realistic weights, or ones with whole zero blocks (scale 0) and tiny ones (subnormal f16 scales).
  w: fc.oneof(vec(d * 32 * nb), vec(d * 32 * nb, fc.constantFrom(0, 0, 0, 1e-6, -3e-7, 1.5, -0.25))),
  x: vec(32 * nb),
  // Row ranges the interleaved layout allows: cuts at multiples of 4.
  cut: fc.integer({ min: 0, max: Math.ceil(d / 4) }).map((c) => Math.min(d, 4 * c)),
  tokens: fc.integer({ min: 1, max: MAX_TOKENS }),
  wShift: fc.integer({ min: 0, max: 3 }), shift,
}));

function packed(dtype: "q8_0" | "q4_0", plain: Uint8Array, d: number, n: number): Uint8Array {
  const out = new Uint8Array(plain.length);
  packRows4(dtype, plain, out, d, n);
  return out;
}

describe("row-interleaved quantized layout", () => {
  it("packing is a permutation: unpack(pack(bytes)) = bytes, and the values are the same matrix", () => {
    fc.assert(fc.property(quantCase, ({ dtype, d, n, w }) => {
      const plain = quantize(dtype, w);
      const p = packed(dtype, plain, d, n);
      expect(unpackRows4(interleavedType(dtype), p, d, n)).toEqual(plain);
      expect(dequantizeMatrix(interleavedType(dtype), p, d, n)).toEqual(dequantize(dtype, plain, d * n));
      if (d > 1) expect(p).not.toEqual(plain); // the layout really differs
    }), { numRuns: 150 });
  });

  it("matvec over r4 weights equals matvec over the plain ones bit for bit, whole and split at multiples of 4", () => {
    fc.assert(fc.property(quantCase, ({ dtype, d, n, w, x, cut, wShift, shift: s }) => {
      const plain = quantize(dtype, w);
      const wp = placeBytes(0, dtype, [d, n], wShift, plain);
      const xt = place(1, [n], s, x);
      const want = place(2, [d], s);
      matvec(want, wp, xt);
      const expected = want.read();
      const wr = placeBytes(0, interleavedType(dtype), [d, n], wShift, packed(dtype, plain, d, n));
      const got = place(2, [d], s);
      matvec(got, wr, xt);
      expectGuards("matvec r4", got);
      expectSameBits(`${dtype}_r4`, got.read(), expected);
      const parts = place(2, [d], s);
      matvec(parts, wr, xt, 0, cut);
      matvec(parts, wr, xt, cut, d);
      expectGuards("matvec r4 split", parts);
      expectSameBits(`${dtype}_r4 split at ${cut}`, parts.read(), expected);
    }), { numRuns: 200 });
  });

  it("matmul over r4 weights equals matmul over the plain ones bit for bit", () => {
    fc.assert(fc.property(quantCase, ({ dtype, d, n, w, tokens, wShift }) => {
      const plain = quantize(dtype, w);
      const xs = Float32Array.from({ length: tokens * n }, (_, i) => Math.sin(i * 0.37 + d));
      const xt = place(1, [tokens, n], 0, xs);
      const want = place(2, [tokens, d], 0);
      matmul(want, placeBytes(0, dtype, [d, n], wShift, plain), xt);
      const expected = want.read();
      const got = place(2, [tokens, d], 0);
      matmul(got, placeBytes(0, interleavedType(dtype), [d, n], wShift, packed(dtype, plain, d, n)), xt);
      expectGuards("matmul r4", got);
      expectSameBits(`${dtype}_r4 gemm`, got.read(), expected);
    }), { numRuns: 100 });
  });

  it("refuses row ranges and row views that cut a group of four", () => {
    const wr = placeBytes(0, "q8_0_r4", [10, 32], 0, new Uint8Array(tensorBytes("q8_0", [10, 32])));
    const x = place(1, [32], 0, new Float32Array(32));
    const out = place(2, [10], 0);
    expect(() => matvec(out, wr, x, 2, 10)).toThrow(ShapeError);
    expect(() => matvec(out, wr, x, 0, 6)).toThrow(ShapeError);
    expect(() => matvec(out, wr, x, 8, 10)).not.toThrow(); // the last group ends at the matrix's end
    expect(() => wr.row(3)).toThrow(ShapeError);
    expect(() => wr.rows(2, 4)).toThrow(ShapeError);
    expect(wr.rows(4, 6).shape).toEqual([6, 32]);
    expect(() => dequantize("q8_0_r4", new Uint8Array(340), 320)).toThrow(ShapeError);
  });
});

describe("quantize_act_q8_0", () => {
  it("writes quantize_q8_0's values: i16 quants, the f16 scale as f32, and -8·Σq per block", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: MAX_BLOCKS }).chain((nb) => vec(32 * nb)), (x) => {
      const n = x.length;
      const engine = harnessEngine();
      const xt = place(1, [n], 0, x);
      const a = placeBytes(3, "u8", [activationBytes(n)], 0);
      engine.kernels.quantize_act_q8_0(a.offset, xt.offset, n);
      expectGuards("quantize_act_q8_0", a);
      const ref = quantizeQ8_0(x);
      const view = new DataView(engine.memory.buffer, a.offset, activationBytes(n));
      const nb = n / 32;
      const want = dequantize("q8_0", ref, n);
      for (let b = 0; b < nb; b++) {
        const scale = view.getFloat32(64 * nb + 4 * b, true);
        let sum = 0;
        for (let j = 0; j < 32; j++) {
          const q = view.getInt16(64 * b + 2 * j, true);
          expect(q).toBe(new Int8Array(ref.buffer, ref.byteOffset + 34 * b + 2, 32)[j]);
          expect(Math.fround(scale * q) === want[32 * b + j]).toBe(true); // (-0 and 0 alike)
          sum += q;
        }
        expect(view.getInt32(68 * nb + 4 * b, true)).toBe((-8 * sum) | 0);
      }
    }), { numRuns: 150 });
  });
});
