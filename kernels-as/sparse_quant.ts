// Sparse FFN kernels over quantized weights, index set S as in sparse.ts (i32 neuron ids; `count` of them):
//   matvec_rows_q8_0 / _q4_0  out[k] = W[S[k], :] · x   (row gather: gate/up of the active neurons)
//   scatter_axpy_q8_0         out    = Σ_k a[k] · Wt[S[k], :]   (column scatter over a Q8_0 W_downᵀ)
//   scatter_axpy_f16          the same over an F16 W_downᵀ
//
// Row gather: x is quantized once by the caller (quantize_act_q8_0 / _q4_0), then each gathered row is the dense
// kernel's computation (matvec_quant.ts, whose block helpers it shares): per block an exact integer dot of int8
// weights with int8 activations, scaled by fl(d_w·d_x) and accumulated in f32 block by block in order, four rows
// sharing each block of x. A row's
// value is therefore fl(acc + fl(S_b · fl(d_w·d_x))) over its blocks — the same formula the dense kernel documents.
//
// Column scatter: W_down is [dim, hidden] with Q8_0 blocks along hidden; transposed at load ([hidden, dim]) its
// rows must be re-blocked along dim: models/weights.ts dequantizes, transposes and requantizes (Q8_0), or keeps
// the transposed values as F16. Each selected row is widened to f32 block by block and added, scaled by a[k]·d,
// to out; four rows per pass over out (a quarter of its loads and stores), as scatter_axpy_f32 does.
import { f16_to_f32, f16x4_to_f32x4, widen_hi, widen_lo, QK, QS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES } from "./blocks";
import { quadRows } from "./matvec_quant";
import { at, listedRow } from "./simd";

export function matvec_rows_q8_0(out: usize, w: usize, xa: usize, n: i32, idx: usize, count: i32): void {
  rowsQuant(out, w, xa, n, idx, count, false);
}

export function matvec_rows_q4_0(out: usize, w: usize, xa: usize, n: i32, idx: usize, count: i32): void {
  rowsQuant(out, w, xa, n, idx, count, true);
}

// Four gathered rows per pass, taken from the index list as simd.listed describes; then the rest in groups of four
// (fewer than four repeat the last row in the missing lanes, which are not stored).
@inline function rowsQuant(out: usize, w: usize, xa: usize, n: i32, idx: usize, count: i32, q4: bool): void {
  const rowBytes = <usize>(n / QK) * (q4 ? Q4_0_BLOCK_BYTES : Q8_0_BLOCK_BYTES);
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    const k1 = k + q, k2 = k + 2 * q, k3 = k + 3 * q;
    quadRows(out, xa, n, listedRow(w, idx, k, rowBytes), listedRow(w, idx, k1, rowBytes), listedRow(w, idx, k2, rowBytes),
      listedRow(w, idx, k3, rowBytes), k, k1, k2, k3, 4, 1, 0, q4);
  }
  const last = count - 1;
  for (let k = 4 * q; k < count; k += 4) {
    const k1 = min(k + 1, last), k2 = min(k + 2, last), k3 = min(k + 3, last);
    quadRows(out, xa, n, listedRow(w, idx, k, rowBytes), listedRow(w, idx, k1, rowBytes), listedRow(w, idx, k2, rowBytes),
      listedRow(w, idx, k3, rowBytes), k, k1, k2, k3, count - k, 1, 0, q4);
  }
}

// out = Σ_k a[k] · Wt[S[k], :], Wt Q8_0 [hidden, dim] (dim a multiple of 32). Per block of each row the factor
// c = fl(a[k]·d) is applied to the widened quants: out[j] += fl(c·q_j), four rows summed pairwise first.
export function scatter_axpy_q8_0(out: usize, wt: usize, a: usize, idx: usize, count: i32, dim: i32): void {
  memory.fill(out, 0, <usize>dim << 2);
  const nb = dim / QK;
  const rowBytes = <usize>nb * Q8_0_BLOCK_BYTES;
  // Four rows per pass, taken from the index list as simd.listed describes.
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    const k1 = k + q, k2 = k + 2 * q, k3 = k + 3 * q;
    let r0 = listedRow(wt, idx, k, rowBytes), r1 = listedRow(wt, idx, k1, rowBytes);
    let r2 = listedRow(wt, idx, k2, rowBytes), r3 = listedRow(wt, idx, k3, rowBytes);
    let av = f32x4.splat(at(a, k));
    av = f32x4.replace_lane(av, 1, at(a, k1));
    av = f32x4.replace_lane(av, 2, at(a, k2));
    av = f32x4.replace_lane(av, 3, at(a, k3));
    let o = out;
    for (let b = 0; b < nb; b++) {
      let dw = i32x4.splat(0);
      dw = v128.load16_lane(r0, dw, 1);
      dw = v128.load16_lane(r1, dw, 3);
      dw = v128.load16_lane(r2, dw, 5);
      dw = v128.load16_lane(r3, dw, 7);
      const c = f32x4.mul(av, f16x4_to_f32x4(dw));
      const c0 = i32x4.shuffle(c, c, 0, 0, 0, 0), c1 = i32x4.shuffle(c, c, 1, 1, 1, 1);
      const c2 = i32x4.shuffle(c, c, 2, 2, 2, 2), c3 = i32x4.shuffle(c, c, 3, 3, 3, 3);
      axpy4q8(o, r0 + QS, r1 + QS, r2 + QS, r3 + QS, c0, c1, c2, c3, 0);
      axpy4q8(o, r0 + QS, r1 + QS, r2 + QS, r3 + QS, c0, c1, c2, c3, 8);
      axpy4q8(o, r0 + QS, r1 + QS, r2 + QS, r3 + QS, c0, c1, c2, c3, 16);
      axpy4q8(o, r0 + QS, r1 + QS, r2 + QS, r3 + QS, c0, c1, c2, c3, 24);
      r0 += Q8_0_BLOCK_BYTES;
      r1 += Q8_0_BLOCK_BYTES;
      r2 += Q8_0_BLOCK_BYTES;
      r3 += Q8_0_BLOCK_BYTES;
      o += <usize>QK << 2;
    }
  }
  for (let k = 4 * q; k < count; k++) {
    let r = listedRow(wt, idx, k, rowBytes);
    const ak = at(a, k);
    let o = out;
    for (let b = 0; b < nb; b++) {
      const c = f32x4.splat(ak * f16_to_f32(<u32>load<u16>(r)));
      axpy1q8(o, r + QS, c, 0);
      axpy1q8(o, r + QS, c, 8);
      axpy1q8(o, r + QS, c, 16);
      axpy1q8(o, r + QS, c, 24);
      r += Q8_0_BLOCK_BYTES;
      o += <usize>QK << 2;
    }
  }
}

// out[j .. j+8) += (c0·q0 + c1·q1) + (c2·q2 + c3·q3), quants j .. j+8 of four blocks.
@inline function axpy4q8(o: usize, q0: usize, q1: usize, q2: usize, q3: usize, c0: v128, c1: v128, c2: v128, c3: v128, j: usize): void {
  const p = o + (j << 2);
  const q0v = v128.load8x8_s(q0 + j), q1v = v128.load8x8_s(q1 + j), q2v = v128.load8x8_s(q2 + j), q3v = v128.load8x8_s(q3 + j);
  const lo = f32x4.add(
    f32x4.add(f32x4.mul(c0, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q0v))), f32x4.mul(c1, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q1v)))),
    f32x4.add(f32x4.mul(c2, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q2v))), f32x4.mul(c3, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q3v)))),
  );
  const hi = f32x4.add(
    f32x4.add(f32x4.mul(c0, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q0v))), f32x4.mul(c1, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q1v)))),
    f32x4.add(f32x4.mul(c2, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q2v))), f32x4.mul(c3, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q3v)))),
  );
  v128.store(p, f32x4.add(v128.load(p), lo));
  v128.store(p, f32x4.add(v128.load(p, 16), hi), 16);
}

@inline function axpy1q8(o: usize, q: usize, c: v128, j: usize): void {
  const p = o + (j << 2);
  const qv = v128.load8x8_s(q + j);
  v128.store(p, f32x4.add(v128.load(p), f32x4.mul(c, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(qv)))));
  v128.store(p, f32x4.add(v128.load(p, 16), f32x4.mul(c, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(qv)))), 16);
}

// out = Σ_k a[k] · Wt[S[k], :], Wt F16 [hidden, dim] (any dim). Values widened exactly to f32.
export function scatter_axpy_f16(out: usize, wt: usize, a: usize, idx: usize, count: i32, dim: i32): void {
  memory.fill(out, 0, <usize>dim << 2);
  const rowBytes = <usize>dim << 1;
  const d8 = dim & ~7;
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    const k1 = k + q, k2 = k + 2 * q, k3 = k + 3 * q;
    const r0 = listedRow(wt, idx, k, rowBytes), r1 = listedRow(wt, idx, k1, rowBytes);
    const r2 = listedRow(wt, idx, k2, rowBytes), r3 = listedRow(wt, idx, k3, rowBytes);
    const a0 = at(a, k), a1 = at(a, k1), a2 = at(a, k2), a3 = at(a, k3);
    const v0 = f32x4.splat(a0), v1 = f32x4.splat(a1), v2 = f32x4.splat(a2), v3 = f32x4.splat(a3);
    let j = 0;
    for (; j < d8; j += 8) {
      const hb = <usize>j << 1;
      const h0 = v128.load(r0 + hb), h1 = v128.load(r1 + hb), h2 = v128.load(r2 + hb), h3 = v128.load(r3 + hb);
      const p = out + (<usize>j << 2);
      const lo = f32x4.add(
        f32x4.add(f32x4.mul(v0, f16x4_to_f32x4(widen_lo(h0))), f32x4.mul(v1, f16x4_to_f32x4(widen_lo(h1)))),
        f32x4.add(f32x4.mul(v2, f16x4_to_f32x4(widen_lo(h2))), f32x4.mul(v3, f16x4_to_f32x4(widen_lo(h3)))),
      );
      const hi = f32x4.add(
        f32x4.add(f32x4.mul(v0, f16x4_to_f32x4(widen_hi(h0))), f32x4.mul(v1, f16x4_to_f32x4(widen_hi(h1)))),
        f32x4.add(f32x4.mul(v2, f16x4_to_f32x4(widen_hi(h2))), f32x4.mul(v3, f16x4_to_f32x4(widen_hi(h3)))),
      );
      v128.store(p, f32x4.add(v128.load(p), lo));
      v128.store(p, f32x4.add(v128.load(p, 16), hi), 16);
    }
    for (; j < dim; j++) {
      const hb = <usize>j << 1;
      const p = out + (<usize>j << 2);
      const s = (a0 * f16_to_f32(<u32>load<u16>(r0 + hb)) + a1 * f16_to_f32(<u32>load<u16>(r1 + hb))) +
        (a2 * f16_to_f32(<u32>load<u16>(r2 + hb)) + a3 * f16_to_f32(<u32>load<u16>(r3 + hb)));
      store<f32>(p, load<f32>(p) + s);
    }
  }
  for (let k = 4 * q; k < count; k++) {
    const r = listedRow(wt, idx, k, rowBytes);
    const ak = at(a, k);
    const v = f32x4.splat(ak);
    let j = 0;
    for (; j < d8; j += 8) {
      const h = v128.load(r + (<usize>j << 1));
      const p = out + (<usize>j << 2);
      v128.store(p, f32x4.add(v128.load(p), f32x4.mul(v, f16x4_to_f32x4(widen_lo(h)))));
      v128.store(p, f32x4.add(v128.load(p, 16), f32x4.mul(v, f16x4_to_f32x4(widen_hi(h)))), 16);
    }
    for (; j < dim; j++) {
      const p = out + (<usize>j << 2);
      store<f32>(p, load<f32>(p) + ak * f16_to_f32(<u32>load<u16>(r + (<usize>j << 1))));
    }
  }
}
