// Schedules over training steps 0 … steps−1: the learning rate (linear warm-up, then cosine decay to
// minRatio·lr at the last step) and the L1 weight (ProSparse-style linear ramp from 0 to λ).

export interface LrSchedule {
  lr: number;
  warmup: number;
  steps: number;
  minRatio: number;
}

export function learningRate(step: number, s: LrSchedule): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const span = Math.max(1, s.steps - 1 - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  const min = s.lr * s.minRatio;
  return min + 0.5 * (s.lr - min) * (1 + Math.cos(Math.PI * progress));
}

/** λ at `step`: λ·step/warmup, then λ (λ from the first step when warmup is 0). */
export function l1Weight(step: number, l1: number, warmup: number): number {
  return warmup > 0 ? l1 * Math.min(1, step / warmup) : l1;
}
