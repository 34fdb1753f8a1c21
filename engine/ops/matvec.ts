import { activationBytes } from "../dtype";
import type { RowKernelName } from "../engine";
import type { Tensor } from "../tensor";
import { ShapeError } from "../errors";
import { check, checkF32, shapeOf } from "./check";

/**
 * out[r] = w[r,:] · x for rows [rowStart, rowEnd) of w: [d, n] (default: all rows); w is f32, f16, bf16, q8_0
 * or q4_0, x and out f32. With quantized weights x is first quantized to Q8_0 values in the engine's scratch
 * (Engine.reserveScratch), as llama.cpp does; every call quantizes again, so a caller that splits the rows of
 * one product across threads should quantize once and run the kernel per range.
 */
export function matvec(out: Tensor, w: Tensor, x: Tensor, rowStart = 0, rowEnd = w.shape[0]): void {
  const [d, n] = w.shape;
  check("matvec", 0 <= rowStart && rowStart <= rowEnd && rowEnd <= d, () => `rows [${rowStart}, ${rowEnd}) of ${d}`);
  const { kernel, xArg } = prepare("matvec", out, w, x);
  const engine = w.engine;
  // Whole products big enough to pay for waking the workers are split by rows across the pool.
  if (engine.pool && rowStart === 0 && rowEnd === d && d * n >= POOL_MIN_MACS) {
    engine.pool.run(kernel, out.offset, w.offset, xArg, n, d);
  } else {
    engine.kernels[kernel](out.offset, w.offset, xArg, n, rowStart, rowEnd);
  }
}

/**
 * The rows [b·blockRows, (b+1)·blockRows) of w · x for each block b in blocks[0, count): e.g. the query rows of
 * the kept attention heads. x is quantized once for all of them (quantized weights); every row has the bits of the
 * full product.
 */
export function matvecBlocks(out: Tensor, w: Tensor, x: Tensor, blocks: ArrayLike<number>, count: number, blockRows: number): void {
  const [d, n] = w.shape;
  check("matvecBlocks", Number.isInteger(blockRows) && blockRows > 0 && Number.isInteger(count) && count >= 0 &&
    count <= blocks.length, () => `${count} blocks of ${blockRows} rows`);
  for (let i = 0; i < count; i++) {
    const b = blocks[i];
    check("matvecBlocks", Number.isInteger(b) && b >= 0 && (b + 1) * blockRows <= d, () =>
      `block ${b} of ${blockRows} rows in ${d}`);
  }
  if (count === 0) return; // before prepare: no block, so no activation to quantize
  const { kernel, xArg } = prepare("matvecBlocks", out, w, x);
  const run = w.engine.kernels[kernel];
  for (let i = 0; i < count; i++) run(out.offset, w.offset, xArg, n, blocks[i] * blockRows, (blocks[i] + 1) * blockRows);
}

type MatvecKernel = Extract<RowKernelName, `matvec_${string}`>;

// Shape checks, then the row kernel for w's dtype and its x argument (quantized into the engine's scratch first
// for q8_0/q4_0 weights).
function prepare(op: string, out: Tensor, w: Tensor, x: Tensor): { kernel: MatvecKernel; xArg: number } {
  checkF32(op, out, x);
  check(op, w.engine === x.engine, () => "tensors from different engines");
  const [d, n] = w.shape;
  check(op, w.shape.length === 2 && x.size === n && out.size === d, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  const xArg = kernelInput(op, w, x);
  return { kernel: `matvec_${w.dtype as "f32" | "f16" | "bf16" | "q8_0" | "q4_0"}`, xArg };
}

/**
 * The x argument of w's row kernels (GEMV, GEMM, row gather): x itself for f32/f16/bf16 weights; for q8_0/q4_0
 * weights its `tokens` rows quantized (quantize_act_q8_0 / _q4_0, once per product, as llama.cpp does) into the
 * engine's scratch under `op`. Other dtypes are a ShapeError.
 */
export function kernelInput(op: string, w: Tensor, x: Tensor, tokens = 1): number {
  switch (w.dtype) {
    case "f32":
    case "f16":
    case "bf16":
      return x.offset;
    case "q8_0":
    case "q4_0": {
      const n = w.shape[1];
      const rb = activationBytes(n);
      const xa = w.engine.scratch(op, tokens * rb);
      const quantizeAct = w.dtype === "q4_0" ? w.engine.kernels.quantize_act_q4_0 : w.engine.kernels.quantize_act_q8_0;
      for (let t = 0; t < tokens; t++) quantizeAct(xa + t * rb, x.offset + 4 * t * n, n);
      return xa;
    }
    default:
      throw new ShapeError(`${op}: ${w.dtype} weights`);
  }
}

// Below this a product takes a few microseconds, about what a round trip through the pool costs.
export const POOL_MIN_MACS = 1 << 16;
