// AdamW (decoupled weight decay, Loshchilov & Hutter) with bias correction. Weight decay applies to the
// matrices only: norm gains stay undecayed, as in llama2.c's and nanoGPT's training. The moments are f32,
// like the parameters they follow.
import type { Params } from "./params";

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Updates done so far (the bias correction's t). */
  t = 0;

  constructor(private readonly params: Params, private readonly opts: AdamWOptions = ADAMW_DEFAULTS) {
    this.m = new Float32Array(params.data.length);
    this.v = new Float32Array(params.data.length);
  }

  /** One update with learning rate `lr`, the gradient multiplied by `gradScale` first (clipping). */
  update(lr: number, gradScale: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const { data, grad } = this.params;
    const { m, v } = this;
    this.t++;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const e of this.params.entries) {
      const decay = e.shape.length === 2 ? weightDecay : 0;
      for (let i = e.offset; i < e.offset + e.size; i++) {
        const g = grad[i] * gradScale;
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        data[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + decay * data[i]);
      }
    }
  }
}

/** ‖g‖₂ over every parameter's gradient, summed in f64. */
export function gradNorm(params: Params): number {
  let s = 0;
  for (const g of params.grad) s += g * g;
  return Math.sqrt(s);
}
