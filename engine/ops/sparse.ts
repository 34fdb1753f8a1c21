// Products over an index set S of neurons (an i32 tensor whose first `count` entries are used).
import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";
import { kernelInput } from "./matvec";

function checkIndices(op: string, idx: Tensor, count: number, bound: number): void {
  check(op, idx.dtype === "i32", () => `indices must be i32, got ${idx.dtype}`);
  check(op, Number.isInteger(count) && count >= 0 && count <= idx.size, () => `count ${count} of ${idx.size} indices`);
  check(op, count <= bound, () => `${count} indices for ${bound} rows`);
}

/**
 * out[k] = w[S[k], :] · x for k < count; w f32, f16, bf16, q8_0 or q4_0, each row computed as the dense kernel
 * computes it. With quantized w, x is first quantized to Q8_0 in the engine's scratch (as matvec does).
 */
export function matvecRows(out: Tensor, w: Tensor, x: Tensor, idx: Tensor, count: number): void {
  checkF32("matvecRows", out, x);
  check("matvecRows", w.engine === x.engine, () => "tensors from different engines");
  const [d, n] = w.shape;
  check("matvecRows", w.shape.length === 2 && x.size === n && out.size >= count, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  checkIndices("matvecRows", idx, count, d);
  if (count === 0) return;
  const xArg = kernelInput("matvecRows", w, x);
  const kernel = `matvec_rows_${w.dtype as "f32" | "f16" | "bf16" | "q8_0" | "q4_0"}` as const;
  w.engine.kernels[kernel](out.offset, w.offset, xArg, n, idx.offset, count);
}

/**
 * out = Σ_{k<count} a[k] · wt[S[k], :] — wt is a transposed [hidden, dim] matrix: f32, q8_0 (blocks along dim,
 * i.e. re-blocked at load) or f16.
 */
export function scatterAxpy(out: Tensor, wt: Tensor, a: Tensor, idx: Tensor, count: number): void {
  checkF32("scatterAxpy", out, a);
  check("scatterAxpy", wt.engine === a.engine, () => "tensors from different engines");
  const [h, dim] = wt.shape;
  check("scatterAxpy", wt.shape.length === 2 && out.size === dim && a.size >= count, () =>
    `wt ${shapeOf(wt)}, a ${shapeOf(a)}, out ${shapeOf(out)}`);
  checkIndices("scatterAxpy", idx, count, h);
  const k = wt.engine.kernels;
  switch (wt.dtype) {
    case "f32":
    case "q8_0":
    case "f16":
      return k[`scatter_axpy_${wt.dtype}`](out.offset, wt.offset, a.offset, idx.offset, count, dim);
    default:
      return check("scatterAxpy", false, () => `${wt.dtype} weights`);
  }
}

/**
 * out = W · x with W stored transposed (wt [n, d]): the column-gather product of input-sparse x (TEAL). x's nonzero
 * entries are listed into idx (i32) and vals (f32), scratch of at least n entries, and only their rows of wt are
 * read (scatterAxpy). Returns how many there were.
 */
export function matvecColumns(out: Tensor, wt: Tensor, x: Tensor, idx: Tensor, vals: Tensor): number {
  checkF32("matvecColumns", x, vals);
  const n = wt.shape[0];
  check("matvecColumns", wt.shape.length === 2 && x.size === n && idx.dtype === "i32" && idx.size >= n && vals.size >= n,
    () => `wt ${shapeOf(wt)}, x ${shapeOf(x)}, scratch ${shapeOf(idx)} ${idx.dtype}, ${shapeOf(vals)}`);
  const count = x.engine.kernels.compact_nonzero_f32(idx.offset, vals.offset, x.offset, n);
  scatterAxpy(out, wt, vals, idx, count);
  return count;
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
