import { activationBytes } from "../dtype";
import type { RowKernelName } from "../engine";
import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/**
 * out[r] = w[r,:] · x for rows [rowStart, rowEnd) of w: [d, n] (default: all rows); w is f32, f16, bf16, q8_0
 * or q4_0, x and out f32. With quantized weights x is first quantized to Q8_0 values in the engine's scratch
 * (Engine.reserveScratch), as llama.cpp does; every call quantizes again, so a caller that splits the rows of
 * one product across threads should quantize once and run the kernel per range.
 */
export function matvec(out: Tensor, w: Tensor, x: Tensor, rowStart = 0, rowEnd = w.shape[0]): void {
  checkF32("matvec", out, x);
  check("matvec", w.engine === x.engine, () => "tensors from different engines");
  const [d, n] = w.shape;
  check("matvec", w.shape.length === 2 && x.size === n && out.size === d, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  check("matvec", 0 <= rowStart && rowStart <= rowEnd && rowEnd <= d, () => `rows [${rowStart}, ${rowEnd}) of ${d}`);
  const engine = w.engine;
  const k = engine.kernels;
  let xArg = x.offset;
  let kernel: RowKernelName;
  switch (w.dtype) {
    case "f32":
    case "f16":
    case "bf16":
      kernel = `matvec_${w.dtype}`;
      break;
    case "q8_0":
    case "q4_0":
      xArg = engine.scratch("matvec", activationBytes(n));
      k.quantize_act_q8_0(xArg, x.offset, n);
      kernel = `matvec_${w.dtype}`;
      break;
    default:
      return check("matvec", false, () => `${w.dtype} weights`);
  }
  // Whole products big enough to pay for waking the workers are split by rows across the pool.
  if (engine.pool && rowStart === 0 && rowEnd === d && d * n >= POOL_MIN_MACS) {
    engine.pool.run(kernel, out.offset, w.offset, xArg, n, d);
  } else {
    k[kernel](out.offset, w.offset, xArg, n, rowStart, rowEnd);
  }
}

// Below this a product takes a few microseconds, about what a round trip through the pool costs.
export const POOL_MIN_MACS = 1 << 16;
