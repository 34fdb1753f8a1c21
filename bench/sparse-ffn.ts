// The MLP block at a given sparsity: dense vs the two gather paths, with the weights of many layers allocated and
// rotated call by call so they stream from memory as in real decode (this machine's L3 is large; the rotation
// spans more than it).
//   known       S given up front (predictor/TDA/Griffin gates): gate, up and down gathered
//   gate-dense  the gate product dense (CATS/CETT/threshold gates), up and down gathered
// for f32 and Q8_0 weights. Q8_0: gate/up gathered by rows with x quantized once per product (as the dense
// kernel), W_downᵀ re-blocked to Q8_0 along dim as loadWeights stores it, so both paths read 8.5 bits per weight.
//   teal        (f32) TEAL at 50%: half of x (the gate/up input) and half of a (the down input) zero, each product a
//               column gather over the transposed weights (models/weights.ts transposeInputs), against dense
import { Bench } from "tinybench";
import { Engine } from "../engine/engine";
import { tensorBytes } from "../engine/dtype";
import { Tensor } from "../engine/tensor";
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

export type FfnBenchDType = "f32" | "q8_0";

export interface FfnBenchRow {
  shape: string;
  dtype: FfnBenchDType;
  path: "known" | "gate-dense" | "teal";
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
  /** Weight dtypes (default f32 and q8_0). */
  dtypes?: FfnBenchDType[];
  /** Milliseconds per measurement (tinybench time budget). */
  time?: number;
  log?: (line: string) => void;
}

export async function runSparseFfnBench(opts: FfnBenchOptions = {}): Promise<FfnBenchRow[]> {
  const rows: FfnBenchRow[] = [];
  for (const shape of opts.shapes ?? FFN_SHAPES) {
    for (const dtype of opts.dtypes ?? (["f32", "q8_0"] as const)) rows.push(...(await benchShape(shape, dtype, opts)));
  }
  return rows;
}

async function benchShape(shape: FfnShape, dtype: FfnBenchDType, opts: FfnBenchOptions): Promise<FfnBenchRow[]> {
  const rows: FfnBenchRow[] = [];
  const { dim, hidden: h, layers } = shape;
  const matrix = tensorBytes(dtype, [h, dim]); // bytes of one FFN matrix (either orientation: dim and h are multiples of 32)
  const f32Matrix = 4 * dim * h;
  const engine = Engine.create(layers * 4 * (matrix + 64) + (dtype === "f32" ? 0 : f32Matrix + 64) + 64 * h + (8 << 20));
  engine.reserveScratch(4 * Math.max(dim, h)); // the quantized activation of a Q8_0 product (under 4 bytes per value)
  const config: LlamaConfig = { dim, hiddenDim: h, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 1, seqLen: 1,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  opts.log?.(`${shape.name} ${dtype}: allocating ${layers} layers (${((layers * 4 * matrix) / 2 ** 30).toFixed(2)} GiB)`);
  // Q8_0 weights: the same values as f32, quantized by the wasm kernel (rows are whole blocks in both layouts).
  const src = dtype === "f32" ? null : engine.tensor([dim * h]);
  const weight = (shape: number[], seed: number): Tensor => {
    if (!src) return fill(engine.tensor(shape), seed);
    const t = engine.tensor(shape, dtype);
    fill(src, seed);
    engine.kernels.quantize_q8_0(t.offset, src.offset, dim * h);
    return t;
  };
  const rowLayers: LayerWeights[] = [];
  const tLayers: LayerWeights[] = [];
  for (let l = 0; l < layers; l++) {
    const wGate = weight([h, dim], l);
    const wUp = weight([h, dim], l + 0.5);
    const base = { attnNorm: wGate, wq: wGate, wk: wGate, wv: wGate, wo: wGate, ffnNorm: wGate, wGate, wUp };
    rowLayers.push({ ...base, wDown: weight([dim, h], l + 0.25), downTransposed: false, woTransposed: false });
    tLayers.push({ ...base, wDown: weight([h, dim], l + 0.75), downTransposed: true, woTransposed: false });
  }
  const x = fill(engine.tensor([dim]), 99);
  const out = engine.tensor([dim]);
  const ffn = new FeedForward(engine, config, ACTIVATION_MODULES.silu);
  let layer = 0;
  let gates: FixedGate[] = [];
  let call = 0;
  let input = x;
  const time = async (weights: LayerWeights[], before?: (call: number) => Tensor): Promise<number> => {
    const bench = new Bench({ time: opts.time ?? 400, warmup: true, warmupTime: 50 });
    bench.add("ffn", () => {
      if (gates.length) ffn.configure(gates[call++ % gates.length], "gather", false);
      if (before) input = before(call++);
      ffn.run(0, weights[layer], input, out);
      layer = (layer + 1) % layers;
    });
    await bench.run();
    const r = bench.tasks[0].result;
    if (r.state !== "completed") throw new Error(`benchmark task ${r.state}${r.state === "errored" ? `: ${r.error}` : ""}`);
    return r.latency.p50;
  };
  ffn.configure(null, "mask", false);
  const denseMs = await time(rowLayers);
  const rowBytes = matrix / h; // bytes of one neuron's row (or column of W_downᵀ)
  for (const path of ["known", "gate-dense"] as const) {
    for (const sparsity of opts.sparsities ?? SPARSITIES) {
      const keep = Math.round((1 - sparsity) * h);
      // A fresh random active set per call (from a pool), as tokens change S: gathered rows are not cache-resident.
      gates = Array.from({ length: INDEX_SETS }, (_, i) => new FixedGate(path === "known" ? "input" : "gate", randomSubset(keep, h, i + 1)));
      const gatherMs = await time(tLayers);
      const gatherBytes = (path === "known" ? 3 * keep : h + 2 * keep) * rowBytes;
      rows.push({ shape: shape.name, dtype, path, sparsity, dense_ms: denseMs, gather_ms: gatherMs,
        gather_gbps: gatherBytes / gatherMs / 1e6, dense_gbps: (3 * matrix) / denseMs / 1e6 });
      opts.log?.(`${shape.name} ${dtype} ${path} sparsity ${sparsity}: dense ${denseMs.toFixed(3)} ms, gather ${gatherMs.toFixed(3)} ms ` +
        `(${(denseMs / gatherMs).toFixed(2)}×)`);
    }
  }
  gates = [];
  ffn.configure(null, "mask", false);
  if (dtype === "f32") {
    // TEAL: the same memory viewed as the transposed gate/up (their contents do not matter for speed; no extra GiB).
    const view = (t: Tensor): Tensor => new Tensor(engine, "f32", [dim, h], t.offset);
    const tealLayers = rowLayers.map((lw, l): LayerWeights => ({ ...lw, wGate: view(lw.wGate), wUp: view(lw.wUp),
      wDown: tLayers[l].wDown, downTransposed: true, woTransposed: true, inputsTransposed: true }));
    for (const sparsity of TEAL_SPARSITIES) {
      // A pool of inputs with a fresh random half zeroed, and of zero patterns for a (as TEAL's threshold gives).
      const inputs = Array.from({ length: INDEX_SETS }, (_, i) => {
        const t = fill(engine.tensor([dim]), 99 + i);
        for (const j of randomSubset(Math.round(sparsity * dim), dim, i + 500)) t.f32()[j] = 0;
        return t;
      });
      const patterns = Array.from({ length: INDEX_SETS }, (_, i) => Int32Array.from(randomSubset(Math.round(sparsity * h), h, i + 900)));
      let pattern = patterns[0];
      ffn.teal = { apply: (_l, point, a) => {
        if (point !== 3) return;
        const v = a.f32();
        for (const j of pattern) v[j] = 0;
      } };
      const gatherMs = await time(tealLayers, (c) => {
        pattern = patterns[c % INDEX_SETS];
        return inputs[c % INDEX_SETS];
      });
      ffn.teal = null;
      const bytes = (2 * Math.round((1 - sparsity) * dim) * h + Math.round((1 - sparsity) * h) * dim) * 4;
      rows.push({ shape: shape.name, dtype, path: "teal", sparsity, dense_ms: denseMs, gather_ms: gatherMs,
        gather_gbps: bytes / gatherMs / 1e6, dense_gbps: (3 * matrix) / denseMs / 1e6 });
      opts.log?.(`${shape.name} ${dtype} teal sparsity ${sparsity}: dense ${denseMs.toFixed(3)} ms, column gather ${gatherMs.toFixed(3)} ms ` +
        `(${(denseMs / gatherMs).toFixed(2)}×)`);
    }
  }
  return rows;
}

/** TEAL's input sparsity levels in the f32 FFN bench (the paper's 40-50% is where it keeps quality). */
const TEAL_SPARSITIES = [0.5];

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

/** The lowest sparsity at which gather is at least as fast as dense, per shape, dtype and path (null: never). */
export function crossovers(rows: FfnBenchRow[]): { shape: string; dtype: string; path: string; sparsity: number | null }[] {
  const keys = [...new Set(rows.map((r) => `${r.shape}|${r.dtype}|${r.path}`))];
  return keys.map((k) => {
    const [shape, dtype, path] = k.split("|");
    const hit = rows.filter((r) => r.shape === shape && r.dtype === dtype && r.path === path && r.gather_ms <= r.dense_ms)
      .map((r) => r.sparsity);
    return { shape, dtype, path, sparsity: hit.length ? Math.min(...hit) : null };
  });
}
