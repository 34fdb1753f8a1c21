// Matrix-vector products with Q8_0 / Q4_0 weights, as llama.cpp does them: the activation x is quantized once
// per product to Q8_0 values (quantize_act_q8_0 / _q4_0, into a scratch buffer the caller owns), then each block of a row
// is an exact integer dot product of int8 weights with int8 activations (widened to i16, i32x4.dot_i16x8_s),
// scaled by d_w·d_x and accumulated in f32. Same row-range contract as matvec_f32; xa is the quantized activation.
//
// The activation is kept in a kernel-private layout (ACT_BLOCK_BYTES per block, see quantize_act_q8_0 and _q4_0):
// its quants already widened to i16 (for Q4_0, combined so that its nibbles need no shifts), its scales already
// f32, and Q4_0's offset term precomputed, since every row of the product reuses them. The values are exactly
// ggml's Q8_0 activation (quantize_q8_0 writes that format itself).
//
// Four rows share each block of x. Their four integer sums are reduced into one i32x4 (lane i = row i), their
// four f16 scales converted in one SIMD step, and lane i of one f32 accumulator collects row i block by block:
// each row's value is fl(acc + fl(S_b · fl(d_w·d_x))) over its blocks in order, whatever the block of rows, and
// a last block of fewer than four rows repeats the last row in the missing lanes (stored only for real rows).
//
// The four rows of a pass come from the four quarters of the row range (r, r+q, r+2q, r+3q), so the weights are
// read as four long sequential streams, as matvec_f32 reads them. Measured on weights streamed from DRAM, against
// four adjacent rows (and against an earlier layout interleaving each group of four rows block by block, which
// made one stream): q8_0 768x768 0.056 vs 0.101 (0.097) ms, 2048x768 0.163 vs 0.318 (0.274), 32000x768 2.69 vs
// 5.28 (4.24); q4_0 2048x768 0.138 vs 0.198 (0.195); 5632x2048 q8_0 1.36 vs 2.35 (2.26).
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
import { ACT_BLOCK_BYTES, f16_to_f32, f16x4_to_f32x4, f32_to_f16, QK, QS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES } from "./blocks";

// x (n f32, n a multiple of 32) -> n/32 Q8_0 blocks at dst, bit for bit as ggml's quantize_row_q8_0_ref (and
// engine/quant.ts quantizeQ8_0): d = amax/127, q = roundf(x·(1/d)) with ties away from zero.
export function quantize_q8_0(dst: usize, x: usize, n: i32): void {
  const signBit = i32x4.splat(<i32>0x80000000);
  for (let b = 0; b < n / QK; b++) {
    const xb = x + (<usize>b << 7);
    const yb = dst + <usize>b * Q8_0_BLOCK_BYTES;
    const v0 = v128.load(xb), v1 = v128.load(xb, 16), v2 = v128.load(xb, 32), v3 = v128.load(xb, 48);
    const v4 = v128.load(xb, 64), v5 = v128.load(xb, 80), v6 = v128.load(xb, 96), v7 = v128.load(xb, 112);
    const d = absMax8(v0, v1, v2, v3, v4, v5, v6, v7) / <f32>127;
    const id = f32x4.splat(inverse(d));
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

// max |v| over the 32 values of a block.
@inline function absMax8(v0: v128, v1: v128, v2: v128, v3: v128, v4: v128, v5: v128, v6: v128, v7: v128): f32 {
  const m = f32x4.max(
    f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
    f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))),
  );
  return max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

// ggml's d ? 1/d : 0, also 0 where 1/d overflows (see engine/quant.ts inverse).
@inline function inverse(d: f32): f32 {
  const inv = <f32>1 / d;
  return isFinite(inv) ? inv : <f32>0;
}

// C's roundf (ties away from zero; wasm's f32x4.nearest ties to even) as i32 lanes: trunc(v) plus ±1 when the
// dropped fraction, which v - trunc(v) gives exactly, is at least one half.
@inline function roundAway(v: v128, signBit: v128): v128 {
  const t = f32x4.trunc(v);
  const up = f32x4.ge(f32x4.abs(f32x4.sub(v, t)), f32x4.splat(0.5));
  const one = v128.or(f32x4.splat(1), v128.and(v, signBit));
  return i32x4.trunc_sat_f32x4_s(f32x4.add(t, v128.and(up, one)));
}

// x (n f32, n a multiple of 32) -> the activation layout of the Q8_0 products below, n/32 blocks:
//   bytes [0, 64·nb)        block b's 32 quants q as i16 at 64·b (values of quantize_q8_0, sign-extended)
//   bytes [64·nb, 68·nb)    block b's scale as f32 (the f16 that quantize_q8_0 stores, converted exactly)
//   bytes [68·nb, 72·nb)    unused
export function quantize_act_q8_0(dst: usize, x: usize, n: i32): void {
  quantizeAct(dst, x, n, false);
}

// The same quantized x in the layout of the Q4_0 products (blockDot's Q4_0 branch says why):
//   bytes [0, 64·nb)        block b's 16·q[0..16) - q[16..32) and q[16..32) as i16
//   bytes [64·nb, 68·nb)    block b's scale / 16 as f32 (exact: a power of two, far from f32's subnormals)
//   bytes [68·nb, 72·nb)    block b's -128·Σq as i32: 16 times Q4_0's nibble offset of 8, applied once per block of rows
export function quantize_act_q4_0(dst: usize, x: usize, n: i32): void {
  quantizeAct(dst, x, n, true);
}

@inline function quantizeAct(dst: usize, x: usize, n: i32, q4: bool): void {
  const signBit = i32x4.splat(<i32>0x80000000);
  const nb = n / QK;
  const scales = dst + (<usize>nb << 6);
  const offsets = scales + (<usize>nb << 2);
  const m128 = i16x8.splat(-128);
  const s16 = i16x8.splat(16);
  for (let b = 0; b < nb; b++) {
    const xb = x + (<usize>b << 7);
    const yb = dst + (<usize>b << 6);
    const v0 = v128.load(xb), v1 = v128.load(xb, 16), v2 = v128.load(xb, 32), v3 = v128.load(xb, 48);
    const v4 = v128.load(xb, 64), v5 = v128.load(xb, 80), v6 = v128.load(xb, 96), v7 = v128.load(xb, 112);
    const d = absMax8(v0, v1, v2, v3, v4, v5, v6, v7) / <f32>127;
    const id = f32x4.splat(inverse(d));
    const q0 = i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v0, id), signBit), roundAway(f32x4.mul(v1, id), signBit));
    const q1 = i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v2, id), signBit), roundAway(f32x4.mul(v3, id), signBit));
    const q2 = i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v4, id), signBit), roundAway(f32x4.mul(v5, id), signBit));
    const q3 = i16x8.narrow_i32x4_s(roundAway(f32x4.mul(v6, id), signBit), roundAway(f32x4.mul(v7, id), signBit));
    const scale = f16_to_f32(f32_to_f16(d));
    if (q4) {
      // |16·q - q'| <= 17·127 < 2^15
      v128.store(yb, i16x8.sub(i16x8.mul(q0, s16), q2));
      v128.store(yb, i16x8.sub(i16x8.mul(q1, s16), q3), 16);
      store<f32>(scales + (<usize>b << 2), scale * <f32>0.0625);
      const c = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(q0, m128), i32x4.dot_i16x8_s(q1, m128)),
        i32x4.add(i32x4.dot_i16x8_s(q2, m128), i32x4.dot_i16x8_s(q3, m128)));
      store<i32>(offsets + (<usize>b << 2), i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) +
        i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3));
    } else {
      v128.store(yb, q0);
      v128.store(yb, q1, 16);
      store<f32>(scales + (<usize>b << 2), scale);
    }
    v128.store(yb, q2, 32);
    v128.store(yb, q3, 48);
  }
}

export function matvec_q8_0(out: usize, w: usize, xa: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecQuant(out, w, xa, n, rowStart, rowEnd, 1, 0, false);
}

export function matvec_q4_0(out: usize, w: usize, xa: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecQuant(out, w, xa, n, rowStart, rowEnd, 1, 0, true);
}

// Integer dot product of one block of quants at p with the activation block x0..x3, as four i32 partial sums.
// Q8_0: x0..x3 are the quants 0-7, 8-15, 16-23, 24-31 as i16, and load8x8_s loads and sign-extends eight weights
// in one instruction. Q4_0: byte k holds value k in its low nibble l_k and value 16+k in its high one h_k; widened
// unsigned to i16 it is a_k = l_k + 16·h_k. With x0, x1 = 16·q[0..16) - q[16..32) and x2, x3 = q[16..32)
// (quantize_act_q4_0), (l·x0 + a·x2) summed is 16·Σ(l_k q_k + h_k q_{16+k}): sixteen times the block's dot
// product, with one mask per half and no shifts (the 16 is taken back in the activation's scale; the nibbles'
// offset of 8 is added per block of rows by the caller). Products stay within i16 × i16 -> i32: 15·2159, 255·127.
@inline export function blockDot(p: usize, x0: v128, x1: v128, x2: v128, x3: v128, q4: bool): v128 {
  if (q4) {
    const q = v128.load(p);
    const a = i16x8.extend_low_i8x16_u(q), b = i16x8.extend_high_i8x16_u(q);
    const low = i16x8.splat(15);
    return i32x4.add(
      i32x4.add(i32x4.dot_i16x8_s(v128.and(a, low), x0), i32x4.dot_i16x8_s(a, x2)),
      i32x4.add(i32x4.dot_i16x8_s(v128.and(b, low), x1), i32x4.dot_i16x8_s(b, x3)),
    );
  }
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(p), x0), i32x4.dot_i16x8_s(v128.load8x8_s(p, 8), x1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(p, 16), x2), i32x4.dot_i16x8_s(v128.load8x8_s(p, 24), x3)),
  );
}

// [Σ s0, Σ s1, Σ s2, Σ s3]: the four rows' block sums in one vector (integer adds: exact in any order).
@inline export function transposeSum(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const s01 = i32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const s23 = i32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(s01, s23, 0, 1, 4, 5), i32x4.shuffle(s01, s23, 2, 3, 6, 7));
}

// Four f16 scales held as lane = h << 16 -> f32x4. Scales of real weights are normal halves, which three
// operations convert; a zero or subnormal one (exponent field 0) takes the exact general conversion.
@inline export function scalesToF32(w: v128): v128 {
  if (v128.any_true(i32x4.eq(v128.and(w, i32x4.splat(0x7c000000)), i32x4.splat(0)))) return f16x4_to_f32x4(w);
  return i32x4.add(v128.and(i32x4.shr_s(w, 3), i32x4.splat(<i32>0x8fffffff)), i32x4.splat(112 << 23));
}

// Four rows' products with one quantized activation (xt, nb blocks), lane k = row k, whose blocks start at w_k.
// Through quadRows, the dense (matvecQuant) and gather (sparse_quant.ts) kernels' one loop, so a gathered row has
// the dense row's bits.
@inline function groupDot(w0: usize, w1: usize, w2: usize, w3: usize, xt: usize, nb: i32, q4: bool): v128 {
  const blockBytes = q4 ? Q4_0_BLOCK_BYTES : Q8_0_BLOCK_BYTES;
  let acc = f32x4.splat(0);
  let xb = xt;
  let xs = xt + (<usize>nb << 6);
  for (let b = 0; b < nb; b++) {
    const x0 = v128.load(xb), x1 = v128.load(xb, 16), x2 = v128.load(xb, 32), x3 = v128.load(xb, 48);
    let sums = transposeSum(
      blockDot(w0 + QS, x0, x1, x2, x3, q4), blockDot(w1 + QS, x0, x1, x2, x3, q4),
      blockDot(w2 + QS, x0, x1, x2, x3, q4), blockDot(w3 + QS, x0, x1, x2, x3, q4),
    );
    if (q4) sums = i32x4.add(sums, v128.load32_splat(xs + (<usize>nb << 2)));
    // The rows' f16 scales into the upper halves of the lanes (lane i = d_i << 16), converted at once.
    let dw = i32x4.splat(0);
    dw = v128.load16_lane(w0, dw, 1);
    dw = v128.load16_lane(w1, dw, 3);
    dw = v128.load16_lane(w2, dw, 5);
    dw = v128.load16_lane(w3, dw, 7);
    const scale = f32x4.mul(scalesToF32(dw), v128.load32_splat(xs));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), scale));
    w0 += blockBytes;
    w1 += blockBytes;
    w2 += blockBytes;
    w3 += blockBytes;
    xb += 64;
    xs += 4;
  }
  return acc;
}

// Rows w0..w3 (their outputs at float index o0..o3) for each of `tokens` activations one after another at xa,
// outputs outStride floats apart; lanes [0, real) are stored. The dense and gather kernels' one loop over rows.
@inline export function quadRows(
  out: usize, xa: usize, n: i32, w0: usize, w1: usize, w2: usize, w3: usize, o0: i32, o1: i32, o2: i32, o3: i32,
  real: i32, tokens: i32, outStride: i32, q4: bool,
): void {
  const nb = n / QK;
  const actBytes = <usize>nb * ACT_BLOCK_BYTES;
  for (let t = 0; t < tokens; t++) {
    const acc = groupDot(w0, w1, w2, w3, xa + <usize>t * actBytes, nb, q4);
    const o = out + <usize>t * (<usize>outStride << 2);
    store<f32>(o + (<usize>o0 << 2), f32x4.extract_lane(acc, 0));
    if (real > 1) store<f32>(o + (<usize>o1 << 2), f32x4.extract_lane(acc, 1));
    if (real > 2) store<f32>(o + (<usize>o2 << 2), f32x4.extract_lane(acc, 2));
    if (real > 3) store<f32>(o + (<usize>o3 << 2), f32x4.extract_lane(acc, 3));
  }
}

// Also the batched product (gemm.ts): `tokens` activations one after another at xa, outputs `outStride` floats
// apart. Each group of four rows is run for every token while it is in L1, by the same code as one product.
// Rows come from the four quarters of the range, then the rows left over in groups of four (fewer than four:
// the missing lanes repeat the last row and are not stored).
@inline export function matvecQuant(
  out: usize, w: usize, xa: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32, q4: bool,
): void {
  const rowBytes = <usize>(n / QK) * (q4 ? Q4_0_BLOCK_BYTES : Q8_0_BLOCK_BYTES);
  const q = (rowEnd - rowStart) >> 2;
  const qb = <usize>q * rowBytes;
  for (let r = rowStart; r < rowStart + q; r++) {
    const w0 = w + <usize>r * rowBytes;
    quadRows(out, xa, n, w0, w0 + qb, w0 + 2 * qb, w0 + 3 * qb, r, r + q, r + 2 * q, r + 3 * q, 4, tokens, outStride, q4);
  }
  const last = rowEnd - 1;
  for (let r = rowStart + 4 * q; r < rowEnd; r += 4) {
    const r1 = min(r + 1, last), r2 = min(r + 2, last), r3 = min(r + 3, last);
    quadRows(out, xa, n, w + <usize>r * rowBytes, w + <usize>r1 * rowBytes, w + <usize>r2 * rowBytes,
      w + <usize>r3 * rowBytes, r, r1, r2, r3, rowEnd - r, tokens, outStride, q4);
  }
}
