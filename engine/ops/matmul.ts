import type { RowKernelName } from "../engine";
import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";
import { kernelInput, POOL_MIN_MACS } from "./matvec";

/**
 * out[t, :] = w · x[t, :] for every row t of x: [T, n], w: [d, n] (f32, f16, bf16, q8_0 or q4_0), out: [T, d] —
 * the batched matvec (prompt processing). Every output is the matvec of its row bit for bit: the kernels reduce
 * each (row, token) pair with the GEMV's own code. With q8_0/q4_0 weights the T rows of x are quantized to Q8_0
 * into the engine's scratch first (T times matvec's need). Large products are split by rows across the pool.
 */
export function matmul(out: Tensor, w: Tensor, x: Tensor): void {
  checkF32("matmul", out, x);
  check("matmul", w.engine === x.engine, () => "tensors from different engines");
  const [d, n] = w.shape;
  const tokens = x.shape[0];
  check("matmul", w.shape.length === 2 && x.shape.length === 2 && x.shape[1] === n && out.shape.length === 2 &&
    out.shape[0] === tokens && out.shape[1] === d, () => `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  const xArg = kernelInput("matmul", w, x, tokens);
  const engine = w.engine;
  const kernel = `gemm_${w.dtype}` as Extract<RowKernelName, `gemm_${string}`>;
  if (engine.pool && d * n * tokens >= POOL_MIN_MACS) {
    engine.pool.run(kernel, out.offset, w.offset, xArg, n, d, tokens, d);
  } else {
    engine.kernels[kernel](out.offset, w.offset, xArg, n, 0, d, tokens, d);
  }
}
