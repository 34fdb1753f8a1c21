// Matrix-vector products with Q8_0 / Q4_0 weights, as llama.cpp does them: the activation x is quantized once
// per product to Q8_0 blocks (quantize_q8_0, into a scratch buffer the caller owns), then each block of a row
// is an exact integer dot product of int8 weights with int8 activations (widened to i16, i32x4.dot_i16x8_s),
// scaled by d_w·d_x and accumulated in f32. Same row-range contract as matvec_f32; xq is the Q8_0 activation.
//
// Four rows share each block of x. Their four integer sums are reduced into one i32x4 (lane i = row i), their
// four f16 scales converted in one SIMD step, and lane i of one f32 accumulator collects row i block by block:
// each row's value is fl(acc + fl(S_b · fl(d_w·d_x))) over its blocks in order, whatever the block of rows, and
// a last block of fewer than four rows repeats the last row in the missing lanes (stored only for real rows).
//
// Kept over the f32-dequantize path (widen each weight block to f32, multiply by f32 x, scale the block's sum by
// d_w; no activation quantization), which measured slower everywhere, one thread, ms per product (best of 30):
//                          integer   dequantize
//   q8_0 256x768 in cache   0.018     0.037
//   q8_0 768x768 DRAM       0.128     0.161
//   q8_0 2048x2048 DRAM     0.795     1.117
//   q4_0 256x768 in cache   0.024     0.047
//   q4_0 768x768 DRAM       0.098     0.163
//   q4_0 2048x2048 DRAM     0.710     1.085
import { f16_to_f32, f16x4_to_f32x4, f32_to_f16, QK, QS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES } from "./blocks";

// x (n f32, n a multiple of 32) -> n/32 Q8_0 blocks at dst, bit for bit as ggml's quantize_row_q8_0_ref (and
// engine/quant.ts quantizeQ8_0): d = amax/127, q = roundf(x·(1/d)) with ties away from zero.
export function quantize_q8_0(dst: usize, x: usize, n: i32): void {
  const signBit = i32x4.splat(<i32>0x80000000);
  for (let b = 0; b < n / QK; b++) {
    const xb = x + (<usize>b << 7);
    const yb = dst + <usize>b * Q8_0_BLOCK_BYTES;
    const v0 = v128.load(xb), v1 = v128.load(xb, 16), v2 = v128.load(xb, 32), v3 = v128.load(xb, 48);
    const v4 = v128.load(xb, 64), v5 = v128.load(xb, 80), v6 = v128.load(xb, 96), v7 = v128.load(xb, 112);
    const m = f32x4.max(
      f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))),
    );
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)),
      max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d = amax / <f32>127;
    // ggml's d ? 1/d : 0, also 0 where 1/d overflows (see engine/quant.ts inverse).
    const inv = <f32>1 / d;
    const id = f32x4.splat(isFinite(inv) ? inv : <f32>0);
    store<u16>(yb, <u16>f32_to_f16(d));
    v128.store(yb + QS, i8x16.narrow_i16x8_s(
      i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v0, id), signBit), roundAway(f32x4.mul(v1, id), signBit)),
      i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v2, id), signBit), roundAway(f32x4.mul(v3, id), signBit)),
    ));
    v128.store(yb + QS + 16, i8x16.narrow_i16x8_s(
      i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v4, id), signBit), roundAway(f32x4.mul(v5, id), signBit)),
      i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v6, id), signBit), roundAway(f32x4.mul(v7, id), signBit)),
    ));
  }
}

// C's roundf (ties away from zero; wasm's f32x4.nearest ties to even) as i32 lanes: trunc(v) plus ±1 when the
// dropped fraction, which v - trunc(v) gives exactly, is at least one half.
@inline function roundAway(v: v128, signBit: v128): v128 {
  const t = f32x4.trunc(v);
  const up = f32x4.ge(f32x4.abs(f32x4.sub(v, t)), f32x4.splat(0.5));
  const one = v128.or(f32x4.splat(1), v128.and(v, signBit));
  return i32x4.trunc_sat_f32x4_s(f32x4.add(t, v128.and(up, one)));
}

export function matvec_q8_0(out: usize, w: usize, xq: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecQuant(out, w, xq, n, rowStart, rowEnd, 1, 0, false);
}

export function matvec_q4_0(out: usize, w: usize, xq: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecQuant(out, w, xq, n, rowStart, rowEnd, 1, 0, true);
}

// Integer dot product of one weight block at p with the activation block widened to i16 (x0..x3 = values
// 0-7, 8-15, 16-23, 24-31), as four i32 partial sums. Q8_0: load8x8_s loads and sign-extends eight quants in
// one instruction. Q4_0: the nibbles are widened unsigned (0..15) to i16 and masked/shifted there (the low
// nibbles of bytes 0-15 are values 0-15, the high ones 16-31); their offset of 8 comes in as c = -8·Σx.
@inline function blockDot(p: usize, x0: v128, x1: v128, x2: v128, x3: v128, c: v128, q4: bool): v128 {
  if (q4) {
    const q = v128.load(p + QS);
    const a = i16x8.extend_low_i8x16_u(q), b = i16x8.extend_high_i8x16_u(q);
    const low = i16x8.splat(15);
    return i32x4.add(c, i32x4.add(
      i32x4.add(i32x4.dot_i16x8_s(v128.and(a, low), x0), i32x4.dot_i16x8_s(v128.and(b, low), x1)),
      i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(a, 4), x2), i32x4.dot_i16x8_s(i16x8.shr_u(b, 4), x3)),
    ));
  }
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(p + QS), x0), i32x4.dot_i16x8_s(v128.load8x8_s(p + QS + 8), x1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(p + QS + 16), x2), i32x4.dot_i16x8_s(v128.load8x8_s(p + QS + 24), x3)),
  );
}

// [Σ s0, Σ s1, Σ s2, Σ s3]: the four rows' block sums in one vector (integer adds: exact in any order).
@inline function transposeSum(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const s01 = i32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const s23 = i32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(s01, s23, 0, 1, 4, 5), i32x4.shuffle(s01, s23, 2, 3, 6, 7));
}

// Also the batched product (gemm.ts): `tokens` activations, Q8_0 rows one after another at xq, outputs `outStride`
// floats apart. Each block of four rows is run for every token while it is in L1, by the same code as one product.
@inline export function matvecQuant(
  out: usize, w: usize, xq: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32, q4: bool,
): void {
  const blockBytes = q4 ? Q4_0_BLOCK_BYTES : Q8_0_BLOCK_BYTES;
  const nb = n / QK;
  const rowBytes = <usize>nb * blockBytes;
  const xRowBytes = <usize>nb * Q8_0_BLOCK_BYTES;
  const last = rowEnd - 1;
  for (let r = rowStart; r < rowEnd; r += 4) {
    for (let t = 0; t < tokens; t++) {
      let w0 = w + <usize>r * rowBytes;
      let w1 = w + <usize>min(r + 1, last) * rowBytes;
      let w2 = w + <usize>min(r + 2, last) * rowBytes;
      let w3 = w + <usize>min(r + 3, last) * rowBytes;
      let acc = f32x4.splat(0);
      let xb = xq + <usize>t * xRowBytes;
      for (let b = 0; b < nb; b++) {
        const x0 = v128.load8x8_s(xb + QS), x1 = v128.load8x8_s(xb + QS + 8);
        const x2 = v128.load8x8_s(xb + QS + 16), x3 = v128.load8x8_s(xb + QS + 24);
        let c = i32x4.splat(0);
        if (q4) {
          const m8 = i16x8.splat(-8);
          c = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(x0, m8), i32x4.dot_i16x8_s(x1, m8)),
            i32x4.add(i32x4.dot_i16x8_s(x2, m8), i32x4.dot_i16x8_s(x3, m8)));
        }
        const sums = transposeSum(
          blockDot(w0, x0, x1, x2, x3, c, q4), blockDot(w1, x0, x1, x2, x3, c, q4),
          blockDot(w2, x0, x1, x2, x3, c, q4), blockDot(w3, x0, x1, x2, x3, c, q4),
        );
        // The rows' f16 scales into the upper halves of the lanes (lane i = d_i << 16), converted at once.
        let dw = i32x4.splat(0);
        dw = v128.load16_lane(w0, dw, 1);
        dw = v128.load16_lane(w1, dw, 3);
        dw = v128.load16_lane(w2, dw, 5);
        dw = v128.load16_lane(w3, dw, 7);
        const scale = f32x4.mul(f16x4_to_f32x4(dw), f32x4.splat(f16_to_f32(<u32>load<u16>(xb))));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), scale));
        w0 += blockBytes;
        w1 += blockBytes;
        w2 += blockBytes;
        w3 += blockBytes;
        xb += Q8_0_BLOCK_BYTES;
      }
      const o = out + <usize>t * (<usize>outStride << 2) + (<usize>r << 2);
      store<f32>(o, f32x4.extract_lane(acc, 0));
      if (r + 1 <= last) store<f32>(o, f32x4.extract_lane(acc, 1), 4);
      if (r + 2 <= last) store<f32>(o, f32x4.extract_lane(acc, 2), 8);
      if (r + 3 <= last) store<f32>(o, f32x4.extract_lane(acc, 3), 12);
    }
  }
}
