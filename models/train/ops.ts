// Where training buffers live and how the big products run. The plain-TS ops work on f32 or f64 arrays (f64
// makes gradient checks exact); the wasm ops (wasm-ops.ts) keep f32 buffers in engine memory and run the
// matmuls on the SIMD kernels. Everything else is the same TS code on either.
import type { Floats, FloatsCtor } from "./floats";
import { attentionBackward, attentionForward, type AttentionShape } from "./attention";
import { matmulBackward, matmulForward } from "./matmul";

export interface TrainOps {
  /** A zeroed buffer of n values. */
  alloc(n: number): Floats;
  /** y[n, o] = Σ_i x[n, i] · w[o, i]  (x [N, I], w [O, I]). */
  matmulForward(y: Floats, x: Floats, w: Floats, N: number, I: number, O: number): void;
  /** dx += dy · w  and  dw += dyᵀ · x. */
  matmulBackward(dx: Floats, dw: Floats, dy: Floats, x: Floats, w: Floats, N: number, I: number, O: number): void;
  /** Causal GQA attention (attention.ts). */
  attentionForward(out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats, a: AttentionShape): void;
  attentionBackward(
    dq: Floats, dk: Floats, dv: Floats, dout: Floats, out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats, a: AttentionShape,
  ): void;
}

export function tsOps(Float: FloatsCtor): TrainOps {
  let scratch = new Float(0);
  const rows = (T: number) => (scratch.length >= T ? scratch : (scratch = new Float(T)));
  return {
    alloc: (n) => new Float(n),
    matmulForward,
    matmulBackward,
    attentionForward: (out, lse, q, k, v, a) => attentionForward(out, lse, q, k, v, a, rows(a.T)),
    attentionBackward: (dq, dk, dv, dout, out, lse, q, k, v, a) => attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, a, rows(a.T)),
  };
}
