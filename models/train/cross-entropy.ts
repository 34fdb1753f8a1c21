// Next-token cross-entropy over rows of logits [N, V]: the softmax replaces the logits in place (the backward
// pass needs only the probabilities), and each row's loss −log p[target] is returned in f64.
import type { Floats } from "./floats";

/** logits → probabilities in place; losses[n] = −log p[n, targets[n]]. Returns Σ losses. */
export function crossEntropyForward(probs: Floats, losses: Float64Array, targets: Int32Array, N: number, V: number): number {
  let total = 0;
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (probs[o + i] > max) max = probs[o + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(probs[o + i] - max);
    const logZ = max + Math.log(sum);
    losses[n] = logZ - probs[o + targets[n]];
    total += losses[n];
    for (let i = 0; i < V; i++) probs[o + i] = Math.exp(probs[o + i] - logZ);
  }
  return total;
}

/** dlogits = scale·(p − onehot(target)), written over the probabilities (the root of the backward pass). */
export function crossEntropyBackward(probs: Floats, targets: Int32Array, N: number, V: number, scale: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    for (let i = 0; i < V; i++) probs[o + i] *= scale;
    probs[o + targets[n]] -= scale;
  }
}
