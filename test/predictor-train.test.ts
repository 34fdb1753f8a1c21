// The trainer on synthetic data with a planted rule it can represent: labels = [U·V·x > 0] for random U [hidden×r],
// V [r×dim], r ≤ rank. A low-rank predictor that learns it recalls nearly every positive on held-out rows.
import { describe, expect, test } from "vitest";
import { TRAIN_DEFAULTS, trainPredictor, type Dataset } from "../eval/predictor/train";
import type { Sigma } from "../models/gates/predictor-file";
import { XorShiftStar } from "../models/sampler";

/** n rows of Gaussian x and the labels of the planted rank-r rule. */
function planted(n: number, dim: number, hidden: number, r: number, seed: number): Dataset {
  const rng = new XorShiftStar(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.nextF32())) * Math.cos(2 * Math.PI * rng.nextF32());
  const U = Float64Array.from({ length: hidden * r }, gauss);
  const V = Float64Array.from({ length: r * dim }, gauss);
  const x = Float32Array.from({ length: n * dim }, gauss);
  const y = new Uint8Array(n * hidden);
  const v = new Float64Array(r);
  for (let t = 0; t < n; t++) {
    for (let k = 0; k < r; k++) {
      v[k] = 0;
      for (let i = 0; i < dim; i++) v[k] += V[k * dim + i] * x[t * dim + i];
    }
    for (let o = 0; o < hidden; o++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += U[o * r + k] * v[k];
      y[t * hidden + o] = s > 0 ? 1 : 0;
    }
  }
  return { x, y, n };
}

describe("training on a planted low-rank rule", () => {
  const data = planted(3000, 24, 48, 4, 7);
  const opts = { ...TRAIN_DEFAULTS, epochs: 40, patience: 5 };

  for (const [sigma, rank] of [["identity", 4], ["relu", 16]] as [Sigma, number][]) {
    test(`σ ${sigma}, rank ${rank}: held-out recall and precision >= 0.95`, () => {
      const { metrics: m } = trainPredictor(data, { dim: 24, hidden: 48, rank, sigma }, opts);
      console.log(`planted rank 4, σ ${sigma} rank ${rank}: recall ${m.recall.toFixed(4)} precision ${m.precision.toFixed(4)} ` +
        `after ${m.epochs} epochs`);
      expect(m.recall).toBeGreaterThanOrEqual(0.95);
      expect(m.precision).toBeGreaterThanOrEqual(0.95);
      expect(Math.abs(m.predicted_sparsity - m.oracle_sparsity)).toBeLessThan(0.05);
    });
  }

  test("deterministic for a seed; another seed gives other weights", () => {
    const shape = { dim: 24, hidden: 48, rank: 4, sigma: "relu" as const };
    const small = { ...opts, epochs: 2 };
    const a = trainPredictor(data, shape, small);
    const b = trainPredictor(data, shape, small);
    const c = trainPredictor(data, shape, { ...small, seed: 2 });
    expect(b.params).toEqual(a.params);
    expect(b.metrics).toEqual(a.metrics);
    expect(c.params.w1).not.toEqual(a.params.w1);
  });

  test("early stopping keeps the best held-out epoch", () => {
    const losses: number[] = [];
    // A learning rate this large makes the held-out loss jump about, so the best epoch is not the last.
    const { metrics } = trainPredictor(data, { dim: 24, hidden: 48, rank: 4, sigma: "relu" }, { ...opts, lr: 0.3, patience: 2 },
      (_, loss) => losses.push(loss));
    expect(losses.length).toBeLessThan(opts.epochs);
    expect(metrics.held_out_loss).toBe(Math.min(...losses));
    expect(metrics.epochs).toBe(losses.indexOf(metrics.held_out_loss) + 1);
  });

  test("too few rows to hold some out is an error", () => {
    expect(() => trainPredictor({ x: new Float32Array(24), y: new Uint8Array(48), n: 1 }, { dim: 24, hidden: 48, rank: 2, sigma: "relu" }, opts))
      .toThrow(/too few/);
  });
});
