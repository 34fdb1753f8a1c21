// TEAL: input-side magnitude sparsity. At four points of each layer — the input of q/k/v (shared), of o, of
// gate/up (shared) and of down — entries with |x_j| at or below the layer's threshold for that point are zeroed, so the
// columns of those linears that meet them contribute nothing. Thresholds are quantiles of |x| on calibration text,
// per layer and point. In mask mode the zeroed products are still computed (an accuracy simulation); in gather
// mode the model is loaded with every linear transposed (models/weights.ts transposeInputs; same memory) and each
// product is a column gather that reads only the columns of the nonzero inputs (engine/ops/sparse.ts
// matvecColumns), as TEAL's kernels do with column-major weights.
import { sparsify } from "../engine/ops/elementwise";
import type { Tensor } from "../engine/tensor";

export const TEAL_POINTS = ["qkv", "o", "gate_up", "down"] as const;
export type TealPoint = 0 | 1 | 2 | 3;

export interface TealHook {
  apply(l: number, point: TealPoint, x: Tensor): void;
}

export class TealSparsifier implements TealHook {
  /** thresholds[l][point] */
  constructor(readonly spec: string, readonly thresholds: readonly (readonly number[])[]) {}

  apply(l: number, point: TealPoint, x: Tensor): void {
    sparsify(x, this.thresholds[l][point]);
  }
}

/** Records |x| at every point (for calibration); changes nothing. */
export class TealRecorder implements TealHook {
  readonly values: number[][][];

  constructor(nLayers: number, private readonly every: number) {
    this.values = Array.from({ length: nLayers }, () => TEAL_POINTS.map(() => [] as number[]));
  }

  private calls = 0;

  apply(l: number, point: TealPoint, x: Tensor): void {
    if (l === 0 && point === 0) this.calls++;
    if (this.calls % this.every !== 0) return;
    const out = this.values[l][point];
    for (const v of x.f32()) out.push(Math.abs(v));
  }
}
