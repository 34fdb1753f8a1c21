// The elementwise middle of the gated MLP: a = act(g), h = a ⊙ u (g = W_gate x, u = W_up x), with the
// optional L1 penalty λ·Σ|a| on the activations (ProSparse) folded into the backward pass.
import { activationDerivative, activationForward, type TrainActivation } from "./activation";
import type { Floats } from "./floats";

export function gatedForward(h: Floats, a: Floats, g: Floats, u: Floats, n: number, act: TrainActivation): void {
  activationForward(a, g, n, act);
  for (let i = 0; i < n; i++) h[i] = a[i] * u[i];
}

/**
 * dg += (dh ⊙ u + l1·sign(a)) ⊙ act'(g)  and  du += dh ⊙ a, where l1 is the gradient of the penalty per unit of
 * |a| (λ over the number of activations the loss averages).
 */
export function gatedBackward(
  dg: Floats, du: Floats, dh: Floats, g: Floats, u: Floats, a: Floats, n: number, act: TrainActivation, l1: number,
): void {
  for (let i = 0; i < n; i++) {
    const da = dh[i] * u[i] + (a[i] > 0 ? l1 : a[i] < 0 ? -l1 : 0);
    dg[i] += da * activationDerivative(g[i], act);
    du[i] += dh[i] * a[i];
  }
}

/** Σ|a|: the penalty's value before scaling. */
export function absSum(a: Floats, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.abs(a[i]);
  return s;
}
