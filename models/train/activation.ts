// The elementwise activations training needs, with their derivatives: SiLU (the original LLaMA MLP) and ReLU
// (the relufied MLP, and stage 2's ReLU after the norms). ReLU's derivative at exactly 0 is taken as 0.
import type { Floats } from "./floats";

export type TrainActivation = "silu" | "relu";

/** y = act(x) for n values (y may be x). */
export function activationForward(y: Floats, x: Floats, n: number, act: TrainActivation): void {
  if (act === "relu") {
    for (let i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
  } else {
    for (let i = 0; i < n; i++) y[i] = x[i] / (1 + Math.exp(-x[i]));
  }
}

/** act'(x): silu'(x) = σ(x)·(1 + x·(1 − σ(x))). */
export function activationDerivative(x: number, act: TrainActivation): number {
  if (act === "relu") return x > 0 ? 1 : 0;
  const s = 1 / (1 + Math.exp(-x));
  return s * (1 + x * (1 - s));
}

/** Backward of an in-place ReLU y = relu(x), in place on the gradient: dy ⊙= (y > 0). */
export function reluBackwardInPlace(dy: Floats, y: Floats, n: number): void {
  for (let i = 0; i < n; i++) if (!(y[i] > 0)) dy[i] = 0;
}
