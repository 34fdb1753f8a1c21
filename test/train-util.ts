// Shared by the training tests: seeded random values, a tiny random LLaMA, the finite-difference check, and
// training checkpoints with an edited header.
import { readFileSync, writeFileSync } from "node:fs";
import type { LlamaConfig } from "../models/config";
import { XorShiftStar } from "../models/sampler";
import { canonicalShapes } from "../models/checkpoint";

/** n uniform values in [-scale, scale) from a seeded generator. */
export function uniform(n: number, seed: number, scale = 1): Float64Array {
  const rng = new XorShiftStar(seed + 1);
  return Float64Array.from({ length: n }, () => (2 * rng.nextF32() - 1) * scale);
}

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, seqLen: 8, ropeTheta: 10000,
    normEps: 1e-5, activation: "silu", ...over };
}

/** Random weights: linears ~ U(±1/sqrt(fan-in)), norm gains 1 ± 0.3 (not all 1, so their gradients matter). */
export function randomWeights(config: LlamaConfig, seed: number): (name: string) => Float64Array {
  const shapes = canonicalShapes(config);
  return (name) => {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const h = [...name].reduce((s, ch) => (s * 31 + ch.charCodeAt(0)) >>> 0, seed);
    if (shape.length === 1) return uniform(n, h, 0.3).map((v) => 1 + v);
    return uniform(n, h, name === "token_embd" ? 1 : 1 / Math.sqrt(shape[1]));
  };
}

/**
 * Central differences of f at every coordinate of x (perturbed in place and restored) against `grad`.
 * In f64 with h = 1e-6 the truncation error is O(h²) ≈ 1e-12 and the rounding error ≈ 1e-16·|f|/h ≈ 1e-10·|f|,
 * so a bound of 1e-6·(1 + |g|) fails only on a wrong gradient.
 */
export function expectGradient(f: () => number, x: Float64Array, grad: ArrayLike<number>, what: string, h = 1e-6): void {
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f();
    x[i] = x0 - h;
    const fm = f();
    x[i] = x0;
    const fd = (fp - fm) / (2 * h);
    if (!(Math.abs(fd - grad[i]) <= 1e-6 * (1 + Math.abs(grad[i])))) {
      throw new Error(`${what}[${i}]: analytic ${grad[i]}, finite difference ${fd}`);
    }
  }
}

/** Σ a ⊙ b in f64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Write to `to` the training checkpoint `from` with its JSON header edited by `edit` and its parameters and moments
 * unchanged (models/train/train-checkpoint.ts's layout), as a hand or another tool might have changed it.
 */
export function forgeTrainCheckpoint(from: string, to: string, edit: (meta: Record<string, any>) => void): void {
  const bytes = readFileSync(from);
  const jsonBytes = bytes.readUInt32LE(8);
  const meta = JSON.parse(bytes.toString("utf8", 12, 12 + jsonBytes));
  edit(meta);
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(Math.ceil((12 + json.length) / 4) * 4);
  bytes.copy(head, 0, 0, 8); // magic and version
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  writeFileSync(to, Buffer.concat([head, bytes.subarray(Math.ceil((12 + jsonBytes) / 4) * 4)]));
}
