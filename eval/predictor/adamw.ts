// AdamW (Loshchilov & Hutter): Adam with bias-corrected moments, and weight decay applied to the parameter
// directly (decoupled from the gradient), only to the tensors marked for it (weights, not biases).
import type { Floats } from "./layers";

export interface AdamWOptions {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class AdamW {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;

  constructor(private readonly params: Floats[], private readonly decay: boolean[], private readonly o: AdamWOptions) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
  }

  /** One update from gradients shaped like the parameters. */
  step(grads: Floats[]): void {
    const { beta1: b1, beta2: b2, eps, o } = this;
    this.t++;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    this.params.forEach((p, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      const shrink = this.decay[k] ? 1 - o.lr * o.weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] = p[i] * shrink - (o.lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    });
  }
}
