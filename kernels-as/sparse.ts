// Sparse FFN kernels over an index set S (i32 neuron ids, ascending):
//   matvec_rows_f32    out[k] = W[S[k], :] · x           (row gather: gate/up products of the active neurons)
//   scatter_axpy_f32   out    = Σ_k a[k] · Wt[S[k], :]   (column scatter: down product, W_down stored transposed)
//   gather_f32 / scatter_f32  move values between full and compact vectors
// Rows are reduced in simd.dot's order, so matvec_rows_f32 gives the same bits as matvec_f32 for a row.
import { dot4 } from "./matvec";
import { at, axpy, dot, listed, listedRow } from "./simd";

export function matvec_rows_f32(out: usize, w: usize, x: usize, n: i32, idx: usize, count: i32): void {
  const rowBytes = <usize>n << 2;
  // Four gathered rows per pass (simd.listed), as the dense kernel does: x loaded once for four streams.
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    dot4(out + (<usize>k << 2), <usize>q << 2, listedRow(w, idx, k, rowBytes), listedRow(w, idx, k + q, rowBytes),
      listedRow(w, idx, k + 2 * q, rowBytes), listedRow(w, idx, k + 3 * q, rowBytes), x, n);
  }
  for (let k = 4 * q; k < count; k++) store<f32>(out + (<usize>k << 2), dot(listedRow(w, idx, k, rowBytes), x, n));
}

export function scatter_axpy_f32(out: usize, wt: usize, a: usize, idx: usize, count: i32, dim: i32): void {
  const rowBytes = <usize>dim << 2;
  memory.fill(out, 0, rowBytes);
  // Four neurons per pass over `out` (a quarter of its loads and stores), taken as the row gathers take theirs.
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    const k1 = k + q, k2 = k + 2 * q, k3 = k + 3 * q;
    axpy4(out, listedRow(wt, idx, k, rowBytes), listedRow(wt, idx, k1, rowBytes), listedRow(wt, idx, k2, rowBytes),
      listedRow(wt, idx, k3, rowBytes), at(a, k), at(a, k1), at(a, k2), at(a, k3), dim);
  }
  for (let k = 4 * q; k < count; k++) axpy(out, at(a, k), listedRow(wt, idx, k, rowBytes), dim);
}

export function gather_f32(out: usize, src: usize, idx: usize, count: i32): void {
  for (let k = 0; k < count; k++) {
    store<f32>(out + (<usize>k << 2), at(src, listed(idx, k)));
  }
}

export function scatter_f32(out: usize, src: usize, idx: usize, count: i32): void {
  for (let k = 0; k < count; k++) {
    store<f32>(out + (<usize>listed(idx, k) << 2), at(src, k));
  }
}

// out = Σ over active heads h of Σ_{r < hs} o[h·hs + r] · Wt[h·hs + r, :] — the attention output projection with
// W_o stored transposed ([dim_in, dim_out]), over the listed heads only. Rows are taken four at a time within a
// head (never across heads), so a head whose o is zero adds exactly nothing: running all heads with skipped ones
// zeroed (mask) gives the same bits as running the active heads alone (keep/skip).
export function scatter_heads_f32(out: usize, wt: usize, o: usize, heads: usize, count: i32, headSize: i32, dim: i32): void {
  const rowBytes = <usize>dim << 2;
  memory.fill(out, 0, rowBytes);
  for (let k = 0; k < count; k++) {
    const first = listed(heads, k) * headSize;
    let r = 0;
    for (; r + 4 <= headSize; r += 4) {
      const row = first + r;
      const r0 = wt + <usize>row * rowBytes;
      const r1 = r0 + rowBytes;
      const r2 = r1 + rowBytes;
      const r3 = r2 + rowBytes;
      const op = o + (<usize>row << 2);
      axpy4(out, r0, r1, r2, r3, load<f32>(op), load<f32>(op, 4), load<f32>(op, 8), load<f32>(op, 12), dim);
    }
    for (; r < headSize; r++) {
      const row = first + r;
      axpy(out, load<f32>(o + (<usize>row << 2)), wt + <usize>row * rowBytes, dim);
    }
  }
}

// out[0..dim) += (a0·r0 + a1·r1) + (a2·r2 + a3·r3): four rows per pass over `out`, a quarter of its loads/stores.
@inline function axpy4(out: usize, r0: usize, r1: usize, r2: usize, r3: usize, a0: f32, a1: f32, a2: f32, a3: f32, dim: i32): void {
  const v0 = f32x4.splat(a0), v1 = f32x4.splat(a1), v2 = f32x4.splat(a2), v3 = f32x4.splat(a3);
  const d4 = dim & ~3;
  let j = 0;
  for (; j < d4; j += 4) {
    const off = <usize>j << 2;
    const s = f32x4.add(
      f32x4.add(f32x4.mul(v0, v128.load(r0 + off)), f32x4.mul(v1, v128.load(r1 + off))),
      f32x4.add(f32x4.mul(v2, v128.load(r2 + off)), f32x4.mul(v3, v128.load(r3 + off))),
    );
    v128.store(out + off, f32x4.add(v128.load(out + off), s));
  }
  for (; j < dim; j++) {
    const off = <usize>j << 2;
    const s = (a0 * load<f32>(r0 + off) + a1 * load<f32>(r1 + off)) + (a2 * load<f32>(r2 + off) + a3 * load<f32>(r3 + off));
    store<f32>(out + off, load<f32>(out + off) + s);
  }
}
