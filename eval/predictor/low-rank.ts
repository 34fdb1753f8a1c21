// The low-rank predictor logits = W2·σ(W1·x + b1) + b2 and its loss, the mean weighted BCE of every logit of a
// minibatch against its label, forward and backward composed from the pieces in layers.ts.
import type { Sigma } from "../../models/gates/predictor-file";
import type { XorShiftStar } from "../../models/sampler";
import { bceBackward, bceForward, reluBackward, reluForward, TS_LINEAR, type Floats, type LinearOps } from "./layers";

export interface LowRankShape {
  dim: number;
  hidden: number;
  rank: number;
  sigma: Sigma;
}

/** W1 [rank×dim], b1 [rank], W2 [hidden×rank], b2 [hidden]. */
export interface Params {
  w1: Floats;
  b1: Floats;
  w2: Floats;
  b2: Floats;
}

export type Alloc = (n: number) => Floats;

export const paramList = (p: Params): Floats[] => [p.w1, p.b1, p.w2, p.b2];

export function allocParams(s: LowRankShape, alloc: Alloc): Params {
  return { w1: alloc(s.rank * s.dim), b1: alloc(s.rank), w2: alloc(s.hidden * s.rank), b2: alloc(s.hidden) };
}

/** As torch.nn.Linear initialises: weights and biases uniform in ±1/√fan_in. */
export function initParams(p: Params, s: LowRankShape, rng: XorShiftStar): void {
  const uniform = (a: Floats, fanIn: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.nextF32() - 1) * bound;
  };
  uniform(p.w1, s.dim);
  uniform(p.b1, s.dim);
  uniform(p.w2, s.rank);
  uniform(p.b2, s.rank);
}

/** Activations and their gradients for minibatches of up to `batch` rows. */
export class Workspace {
  readonly z1: Floats; // W1·x + b1
  readonly a1: Floats; // σ(z1)
  readonly s: Floats; // logits
  readonly ds: Floats;
  readonly da1: Floats;
  readonly dz1: Floats;

  constructor(
    readonly shape: LowRankShape,
    readonly batch: number,
    alloc: Alloc = (n) => new Float32Array(n),
    private readonly linear: LinearOps = TS_LINEAR,
  ) {
    const { rank: r, hidden: h } = shape;
    this.z1 = alloc(batch * r);
    this.a1 = shape.sigma === "relu" ? alloc(batch * r) : this.z1;
    this.s = alloc(batch * h);
    this.ds = alloc(batch * h);
    this.da1 = alloc(batch * r);
    this.dz1 = shape.sigma === "relu" ? alloc(batch * r) : this.da1;
  }

  /** Logits of B rows of x [B×dim] into this.s. */
  forward(p: Params, x: Floats, B: number): void {
    const { dim: d, rank: r, hidden: h, sigma } = this.shape;
    this.linear.forward(this.z1, x, p.w1, p.b1, B, d, r);
    if (sigma === "relu") reluForward(this.a1, this.z1, B * r);
    this.linear.forward(this.s, this.a1, p.w2, p.b2, B, r, h);
  }

  /** Mean weighted BCE of the last forward's B×hidden logits against the labels y [B×hidden]. */
  loss(y: Uint8Array, B: number, pw: number): number {
    const n = B * this.shape.hidden;
    return bceForward(this.s, y, pw, n) / n;
  }

  /** The gradient of loss() with respect to every parameter, into grads; after forward(p, x, B). */
  backward(p: Params, x: Floats, y: Uint8Array, B: number, pw: number, grads: Params): void {
    const { dim: d, rank: r, hidden: h, sigma } = this.shape;
    const n = B * h;
    bceBackward(this.ds, this.s, y, pw, 1 / n, n);
    this.linear.backward(this.da1, grads.w2, grads.b2, this.ds, this.a1, p.w2, B, r, h);
    if (sigma === "relu") reluBackward(this.dz1, this.da1, this.z1, B * r);
    this.linear.backward(null, grads.w1, grads.b1, this.dz1, x, p.w1, B, d, r);
  }
}
