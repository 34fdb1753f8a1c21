// The MLP block at a given sparsity: dense vs the two gather paths, with the weights of many layers allocated and
// rotated call by call so they stream from memory as in real decode (this machine's L3 is large; the rotation
// spans more than it).
//   known       S given up front (predictor/TDA/Griffin gates): gate, up and down gathered
//   gate-dense  the gate product dense (CATS/CETT/threshold gates), up and down gathered
import { Bench } from "tinybench";
import { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES } from "../models/activation";
import type { LlamaConfig } from "../models/config";
import { FeedForward } from "../models/ffn";
import { FixedGate } from "../models/gates/fixed-gate";
import type { LayerWeights } from "../models/weights";

export interface FfnShape {
  name: string;
  dim: number;
  hidden: number;
  /** Layers allocated and rotated through. */
  layers: number;
}

export const FFN_SHAPES: FfnShape[] = [
  { name: "stories110M", dim: 768, hidden: 2048, layers: 36 }, // 36 × 4 matrices × 6.3 MB ≈ 900 MB
  { name: "1B", dim: 2048, hidden: 5632, layers: 12 }, // 12 × 4 × 46 MB ≈ 2.2 GB
];

export const SPARSITIES = [0, 0.5, 0.7, 0.9, 0.95, 0.99];

export interface FfnBenchRow {
  shape: string;
  dtype: "f32";
  path: "known" | "gate-dense";
  sparsity: number;
  dense_ms: number;
  gather_ms: number;
  /** Weight bytes the gather path reads per call, over its time. */
  gather_gbps: number;
  dense_gbps: number;
}

export interface FfnBenchOptions {
  shapes?: FfnShape[];
  sparsities?: number[];
  /** Milliseconds per measurement (tinybench time budget). */
  time?: number;
  log?: (line: string) => void;
}

export async function runSparseFfnBench(opts: FfnBenchOptions = {}): Promise<FfnBenchRow[]> {
  const rows: FfnBenchRow[] = [];
  for (const shape of opts.shapes ?? FFN_SHAPES) {
    const { dim, hidden: h, layers } = shape;
    const matrix = 4 * dim * h;
    const engine = Engine.create(layers * 4 * (matrix + 64) + 64 * h + (8 << 20));
    const config: LlamaConfig = { dim, hiddenDim: h, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 1, seqLen: 1,
      ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
    opts.log?.(`${shape.name}: allocating ${layers} layers (${((layers * 4 * matrix) / 2 ** 30).toFixed(2)} GiB)`);
    const rowLayers: LayerWeights[] = [];
    const tLayers: LayerWeights[] = [];
    for (let l = 0; l < layers; l++) {
      const t = (shape: number[]) => fill(engine.tensor(shape), l);
      const wGate = t([h, dim]);
      const wUp = t([h, dim]);
      const base = { attnNorm: wGate, wq: wGate, wk: wGate, wv: wGate, wo: wGate, ffnNorm: wGate, wGate, wUp };
      rowLayers.push({ ...base, wDown: t([dim, h]), downTransposed: false, woTransposed: false });
      tLayers.push({ ...base, wDown: t([h, dim]), downTransposed: true, woTransposed: false });
    }
    const x = fill(engine.tensor([dim]), 99);
    const out = engine.tensor([dim]);
    const ffn = new FeedForward(engine, config, ACTIVATION_MODULES.silu);
    let layer = 0;
    let gates: FixedGate[] = [];
    let call = 0;
    const time = async (weights: LayerWeights[]): Promise<number> => {
      const bench = new Bench({ time: opts.time ?? 400, warmup: true, warmupTime: 50 });
      bench.add("ffn", () => {
        if (gates.length) ffn.configure(gates[call++ % gates.length], "gather", false);
        ffn.run(0, weights[layer], x, out);
        layer = (layer + 1) % layers;
      });
      await bench.run();
      const r = bench.tasks[0].result;
      if (r.state !== "completed") throw new Error(`benchmark task ${r.state}`);
      return r.latency.p50;
    };
    ffn.configure(null, "mask", false);
    const denseMs = await time(rowLayers);
    for (const path of ["known", "gate-dense"] as const) {
      for (const sparsity of opts.sparsities ?? SPARSITIES) {
        const keep = Math.round((1 - sparsity) * h);
        // A fresh random active set per call (from a pool), as tokens change S: gathered rows are not cache-resident.
        gates = Array.from({ length: INDEX_SETS }, (_, i) => new FixedGate(path === "known" ? "input" : "gate", randomSubset(keep, h, i + 1)));
        const gatherMs = await time(tLayers);
        const gatherBytes = (path === "known" ? 3 * keep : h + 2 * keep) * dim * 4;
        rows.push({ shape: shape.name, dtype: "f32", path, sparsity, dense_ms: denseMs, gather_ms: gatherMs,
          gather_gbps: gatherBytes / gatherMs / 1e6, dense_gbps: (3 * matrix) / denseMs / 1e6 });
        opts.log?.(`${shape.name} ${path} sparsity ${sparsity}: dense ${denseMs.toFixed(3)} ms, gather ${gatherMs.toFixed(3)} ms ` +
          `(${(denseMs / gatherMs).toFixed(2)}×)`);
      }
    }
  }
  return rows;
}

const INDEX_SETS = 64;

/** k distinct indices of [0, n), ascending, from a seeded shuffle. */
function randomSubset(k: number, n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  let s = seed * 2654435761;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, k).sort((a, b) => a - b);
}

function fill(t: Tensor, seed: number): Tensor {
  const a = t.f32();
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.001 + seed) * 0.05;
  return t;
}

/** The lowest sparsity at which gather is at least as fast as dense, per shape and path (null: never). */
export function crossovers(rows: FfnBenchRow[]): { shape: string; path: string; sparsity: number | null }[] {
  const keys = [...new Set(rows.map((r) => `${r.shape}|${r.path}`))];
  return keys.map((k) => {
    const [shape, path] = k.split("|");
    const hit = rows.filter((r) => r.shape === shape && r.path === path && r.gather_ms <= r.dense_ms).map((r) => r.sparsity);
    return { shape, path, sparsity: hit.length ? Math.min(...hit) : null };
  });
}
