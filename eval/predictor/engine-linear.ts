// The predictor's linear layers on the engine's SIMD kernels (plain TS is ~10× slower at the stories110M shape):
//   forward  out[b] = W·inp[b] + bias                 one matvec per row
//   dinp[b]  = Σ_o dout[b,o]·W[o,:]                    a column scatter over all rows of W
//   dW[o,:]  = Σ_b dout[b,o]·inp[b,:]                  a column scatter over the minibatch (dout transposed first)
//   dbias    = Σ_b 1·dout[b,:]                         a column scatter with unit weights
// Every buffer must be a Float32Array view of this engine's memory (allocate them with `alloc`).
import { Engine } from "../../engine/engine";
import { DynactError } from "../../engine/errors";
import { add } from "../../engine/ops/elementwise";
import { matvec } from "../../engine/ops/matvec";
import { scatterAxpy } from "../../engine/ops/sparse";
import { Tensor } from "../../engine/tensor";
import type { Floats, LinearOps } from "./layers";

export class EngineLinear implements LinearOps {
  readonly engine: Engine;
  private readonly all: Tensor; // 0, 1, 2, …
  private readonly ones: Tensor;
  private readonly doutT: Tensor;

  /** An engine holding `bytes` of buffers besides this op's scratch, for minibatches ≤ batch and O ≤ maxOut. */
  constructor(bytes: number, batch: number, maxOut: number) {
    const n = Math.max(batch, maxOut);
    this.engine = Engine.create(bytes + 4 * (2 * n + batch + batch * maxOut) + 64 * 4);
    this.all = this.engine.tensor([n], "i32");
    this.all.i32().forEach((_, i, a) => (a[i] = i));
    this.ones = this.engine.from(new Float32Array(batch).fill(1));
    this.doutT = this.engine.tensor([maxOut * batch]);
  }

  /** A zeroed f32 buffer in the engine's memory. */
  alloc(n: number): Float32Array {
    return this.engine.tensor([n]).f32();
  }

  forward(out: Floats, inp: Floats, w: Floats, bias: Floats, B: number, I: number, O: number): void {
    const W = this.view(w, [O, I]);
    const b0 = this.view(bias, [O]);
    for (let b = 0; b < B; b++) {
      const y = this.view(out, [O], b * O);
      matvec(y, W, this.view(inp, [I], b * I));
      add(y, y, b0);
    }
  }

  backward(dinp: Floats | null, dw: Floats, dbias: Floats, dout: Floats, inp: Floats, w: Floats, B: number, I: number, O: number): void {
    const g = dout.subarray(0, B * O);
    const t = this.doutT.f32();
    for (let b = 0; b < B; b++) for (let o = 0; o < O; o++) t[o * B + b] = g[b * O + o];
    const X = this.view(inp, [B, I]);
    const T = this.doutT.prefix(B * O).reshape([O, B]);
    for (let o = 0; o < O; o++) scatterAxpy(this.view(dw, [I], o * I), X, T.row(o), this.all, B);
    scatterAxpy(this.view(dbias, [O]), this.view(dout, [B, O]), this.ones, this.all, B);
    if (!dinp) return;
    const W = this.view(w, [O, I]);
    for (let b = 0; b < B; b++) scatterAxpy(this.view(dinp, [I], b * I), W, this.view(dout, [O], b * O), this.all, O);
  }

  /** The values a[at …] as a tensor of `shape`. */
  private view(a: Floats, shape: number[], at = 0): Tensor {
    if (!(a instanceof Float32Array) || a.buffer !== this.engine.memory.buffer) {
      throw new DynactError("internal: EngineLinear buffers must be f32 views of its engine's memory");
    }
    return new Tensor(this.engine, "f32", shape, a.byteOffset + 4 * at);
  }
}
