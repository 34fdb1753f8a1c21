// RMSNorm over rows: y = w ⊙ x · r with r = 1/sqrt(mean(x²) + eps), kept per row for the backward pass.
import type { Floats } from "./floats";

export function rmsnormForward(y: Floats, rstd: Floats, x: Floats, w: Floats, N: number, D: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[o + i] * x[o + i];
    const r = 1 / Math.sqrt(ss / D + eps);
    rstd[n] = r;
    for (let i = 0; i < D; i++) y[o + i] = w[i] * x[o + i] * r;
  }
}

/**
 * dx += r·(w ⊙ dy) − (r³/D)·x·Σ_j(w_j dy_j x_j)  and  dw += Σ_n dy ⊙ x · r.
 * `rstd` must hold the values stored by the forward pass: recomputing it would change the f32 result.
 */
export function rmsnormBackward(
  dx: Floats, dw: Floats, dy: Floats, x: Floats, w: Floats, rstd: Floats, N: number, D: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * D;
    const r = rstd[n];
    let dot = 0;
    for (let i = 0; i < D; i++) dot += w[i] * dy[o + i] * x[o + i];
    const c = (r * r * r * dot) / D;
    for (let i = 0; i < D; i++) {
      dx[o + i] += r * w[i] * dy[o + i] - c * x[o + i];
      dw[i] += dy[o + i] * x[o + i] * r;
    }
  }
}
