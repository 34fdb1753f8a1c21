import { rowBytes } from "../dtype";
import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/**
 * out[r] = w[r,:] · x for rows [rowStart, rowEnd) of w: [d, n] (default: all rows); w is f32, f16, bf16, q8_0
 * or q4_0, x and out f32. With q8_0/q4_0 weights x is first quantized to Q8_0 blocks in the engine's scratch
 * (Engine.reserveScratch), as llama.cpp does; every call quantizes again, so a caller that splits the rows of
 * one product across threads should quantize once and run matvec_q8_0/q4_0 per range.
 */
export function matvec(out: Tensor, w: Tensor, x: Tensor, rowStart = 0, rowEnd = w.shape[0]): void {
  checkF32("matvec", out, x);
  check("matvec", w.engine === x.engine, () => "tensors from different engines");
  const [d, n] = w.shape;
  check("matvec", w.shape.length === 2 && x.size === n && out.size === d, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  check("matvec", 0 <= rowStart && rowStart <= rowEnd && rowEnd <= d, () => `rows [${rowStart}, ${rowEnd}) of ${d}`);
  const k = w.engine.kernels;
  switch (w.dtype) {
    case "f32":
      return k.matvec_f32(out.offset, w.offset, x.offset, n, rowStart, rowEnd);
    case "f16":
      return k.matvec_f16(out.offset, w.offset, x.offset, n, rowStart, rowEnd);
    case "bf16":
      return k.matvec_bf16(out.offset, w.offset, x.offset, n, rowStart, rowEnd);
    case "q8_0":
    case "q4_0": {
      const xq = w.engine.scratch("matvec", rowBytes("q8_0", n));
      k.quantize_q8_0(xq, x.offset, n);
      const kernel = w.dtype === "q8_0" ? k.matvec_q8_0 : k.matvec_q4_0;
      return kernel(out.offset, w.offset, xq, n, rowStart, rowEnd);
    }
    case "i32":
      return check("matvec", false, () => "i32 weights");
  }
}
