// Products over an index set S of neurons (an i32 tensor whose first `count` entries are used).
import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

function checkIndices(op: string, idx: Tensor, count: number, bound: number): void {
  check(op, idx.dtype === "i32", () => `indices must be i32, got ${idx.dtype}`);
  check(op, Number.isInteger(count) && count >= 0 && count <= idx.size, () => `count ${count} of ${idx.size} indices`);
  check(op, count <= bound, () => `${count} indices for ${bound} rows`);
}

/** out[k] = w[S[k], :] · x for k < count. */
export function matvecRows(out: Tensor, w: Tensor, x: Tensor, idx: Tensor, count: number): void {
  checkF32("matvecRows", out, w, x);
  const [d, n] = w.shape;
  check("matvecRows", w.shape.length === 2 && x.size === n && out.size >= count, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  checkIndices("matvecRows", idx, count, d);
  w.engine.kernels.matvec_rows_f32(out.offset, w.offset, x.offset, n, idx.offset, count);
}

/** out = Σ_{k<count} a[k] · wt[S[k], :] — wt is a transposed [hidden, dim] matrix. */
export function scatterAxpy(out: Tensor, wt: Tensor, a: Tensor, idx: Tensor, count: number): void {
  checkF32("scatterAxpy", out, wt, a);
  const [h, dim] = wt.shape;
  check("scatterAxpy", wt.shape.length === 2 && out.size === dim && a.size >= count, () =>
    `wt ${shapeOf(wt)}, a ${shapeOf(a)}, out ${shapeOf(out)}`);
  checkIndices("scatterAxpy", idx, count, h);
  wt.engine.kernels.scatter_axpy_f32(out.offset, wt.offset, a.offset, idx.offset, count, dim);
}

/** out[k] = src[S[k]] */
export function gather(out: Tensor, src: Tensor, idx: Tensor, count: number): void {
  checkF32("gather", out, src);
  check("gather", out.size >= count, () => `out ${shapeOf(out)} for ${count} values`);
  checkIndices("gather", idx, count, src.size);
  src.engine.kernels.gather_f32(out.offset, src.offset, idx.offset, count);
}

/** out[S[k]] = src[k]; other entries of out are left as they are. */
export function scatter(out: Tensor, src: Tensor, idx: Tensor, count: number): void {
  checkF32("scatter", out, src);
  check("scatter", src.size >= count, () => `src ${shapeOf(src)} for ${count} values`);
  checkIndices("scatter", idx, count, out.size);
  src.engine.kernels.scatter_f32(out.offset, src.offset, idx.offset, count);
}

/** out = Σ_{h ∈ heads[:count]} W_o[:, head h's columns] · o_h, with W_o stored transposed as wt [dim_in, dim_out]. */
export function scatterHeads(out: Tensor, wt: Tensor, o: Tensor, heads: Tensor, count: number, headSize: number): void {
  checkF32("scatterHeads", out, wt, o);
  const [dIn, dOut] = wt.shape;
  check("scatterHeads", wt.shape.length === 2 && o.size === dIn && out.size === dOut && headSize > 0 && dIn % headSize === 0,
    () => `wt ${shapeOf(wt)}, o ${shapeOf(o)}, out ${shapeOf(out)}, head size ${headSize}`);
  checkIndices("scatterHeads", heads, count, dIn / headSize);
  wt.engine.kernels.scatter_heads_f32(out.offset, wt.offset, o.offset, heads.offset, count, headSize, dOut);
}
