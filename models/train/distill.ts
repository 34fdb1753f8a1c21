// Knowledge distillation (Hinton et al.): the student's loss per position mixes next-token cross-entropy with
// the KL divergence from the teacher's distribution at temperature τ,
//   loss_n = (1 − α)·CE(s_n, target_n) + α·τ²·KL(softmax(t_n/τ) ‖ softmax(s_n/τ)),
// whose gradient with respect to the student logits s_n is
//   (1 − α)·(softmax(s_n) − onehot(target_n)) + α·τ·(softmax(s_n/τ) − softmax(t_n/τ))
// (the τ² keeps the soft term's gradient on the scale of the hard one's as τ grows). All sums are f64.
import type { Floats } from "./floats";

export interface DistillSums {
  /** Σ_n CE(s_n, target_n) (nats). */
  ce: number;
  /** Σ_n τ²·KL(softmax(t_n/τ) ‖ softmax(s_n/τ)) (nats). */
  kl: number;
}

/**
 * Rows of student logits [N, V] against the teacher's [N, V]: ceLosses[n] = CE of row n; the student logits are
 * replaced by scale · d loss_n / d s_n (scale 1/N: the gradient of the mean). Returns the sums of both terms.
 */
export function distillForward(
  logits: Floats, teacher: ArrayLike<number>, ceLosses: Float64Array, targets: Int32Array, N: number, V: number,
  alpha: number, temp: number, scale: number,
): DistillSums {
  let ce = 0, kl = 0;
  const inv = 1 / temp;
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let maxS = -Infinity, maxT = -Infinity;
    for (let i = 0; i < V; i++) {
      if (logits[o + i] > maxS) maxS = logits[o + i];
      if (teacher[o + i] > maxT) maxT = teacher[o + i];
    }
    // log-partition functions of s, s/τ and t/τ
    let z1 = 0, zs = 0, zt = 0;
    for (let i = 0; i < V; i++) {
      z1 += Math.exp(logits[o + i] - maxS);
      zs += Math.exp((logits[o + i] - maxS) * inv);
      zt += Math.exp((teacher[o + i] - maxT) * inv);
    }
    const logZ1 = maxS + Math.log(z1), logZs = maxS * inv + Math.log(zs), logZt = maxT * inv + Math.log(zt);
    ceLosses[n] = logZ1 - logits[o + targets[n]];
    ce += ceLosses[n];
    let rowKl = 0;
    for (let i = 0; i < V; i++) {
      const s = logits[o + i];
      const logP = s * inv - logZs, logQ = teacher[o + i] * inv - logZt;
      const q = Math.exp(logQ);
      if (q > 0) rowKl += q * (logQ - logP);
      logits[o + i] = scale * ((1 - alpha) * Math.exp(s - logZ1) + alpha * temp * (Math.exp(logP) - q));
    }
    logits[o + targets[n]] -= scale * (1 - alpha);
    kl += temp * temp * rowKl;
  }
  return { ce, kl };
}
