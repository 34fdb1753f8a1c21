// Matvec speed per weight dtype at real model shapes: ms per product, GFLOP/s and GB/s, one thread. Every
// model matrix of a shape is allocated (and more copies, up to minBytes, when that is not enough to overflow
// the dev machine's 300 MiB L3) and the products rotate through them call by call, so the weights stream from
// DRAM as in decode. Products with q8_0/q4_0 weights include quantizing x (the matvec op does both). The rooflines
// are the read bandwidth of sum_f32 over the same memory and the mul + add rate of mul_add_f32.
import { Bench } from "tinybench";
import { alignUp } from "../engine/arena";
import { activationBytes, tensorBytes, type DType } from "../engine/dtype";
import { Engine } from "../engine/engine";
import { matvec } from "../engine/ops/matvec";
import { quantize } from "../engine/quant";
import { Tensor } from "../engine/tensor";
import { canonicalShapes } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { randomTensor } from "./random-model";
import { ONE_B, shapeByName, type BenchShape } from "./shapes";

/** TinyLlama-1.1B: the 1B-class shape (LLaMA-2 architecture, GQA with 4 KV heads). */
export const TINYLLAMA_1B: BenchShape = { name: "TinyLlama-1.1B", config: { ...ONE_B.config, seqLen: 2048 } };

export interface MatrixCase {
  model: BenchShape;
  rows: number;
  cols: number;
}

export const DEFAULT_CASES: MatrixCase[] = [
  ...[[768, 768], [2048, 768], [768, 2048], [32000, 768]].map(([rows, cols]) =>
    ({ model: shapeByName("stories110M"), rows, cols })),
  ...[[2048, 2048], [5632, 2048], [2048, 5632]].map(([rows, cols]) => ({ model: TINYLLAMA_1B, rows, cols })),
];

export interface KernelBenchOptions {
  cases?: MatrixCase[];
  dtypes?: DType[];
  /** Least bytes of distinct weights per case (default 400 MB, past the 300 MiB L3). */
  minBytes?: number;
  /** Most bytes of weights per case (default 2 GiB: all 44 f32 FFN matrices of TinyLlama fit). */
  maxBytes?: number;
  /** Time budget per case in ms (tinybench `time`; default 1000). */
  time?: number;
  log?: (line: string) => void;
}

export interface KernelResult {
  kernel: string;
  model: string;
  /** rows x cols */
  shape: string;
  dtype: DType;
  /** Median ms per product. */
  ms: number;
  gflops: number;
  /** Weight, x and out bytes per product over its time. */
  gbps: number;
}

export interface KernelBenchResult {
  kernels: KernelResult[];
  /** sum_f32 (four streams) over minBytes or more: the one-thread read bandwidth that bounds the products. */
  read_gbps: number;
  /** mul_add_f32: one thread's f32 multiply + add rate in base SIMD, the bound of the compute-bound products. */
  peak_gflops: number;
}

/** The canonical linear weights of a model with this [rows, cols] (not token_embd, which is gathered). */
function modelMatrices(config: LlamaConfig, rows: number, cols: number): string[] {
  return [...canonicalShapes(config)].filter(([name, s]) =>
    name !== "token_embd" && s.length === 2 && s[0] === rows && s[1] === cols).map(([name]) => name);
}

/** Median ms per call of fn, by tinybench. */
function medianMs(name: string, fn: () => void, time: number): number {
  const bench = new Bench({ time, warmupTime: Math.min(200, time / 4) });
  bench.add(name, fn);
  const [task] = bench.runSync();
  const r = task.result;
  if (r.state !== "completed") throw new Error(`benchmark ${name} did not complete (${r.state})`);
  return r.latency.p50;
}

export function runKernelBench(opts: KernelBenchOptions = {}): KernelBenchResult {
  const cases = opts.cases ?? DEFAULT_CASES;
  const dtypes = opts.dtypes ?? ["f32", "f16", "bf16", "q8_0", "q4_0"];
  const minBytes = opts.minBytes ?? 400e6;
  const maxBytes = opts.maxBytes ?? 2 ** 31;
  const time = opts.time ?? 1000;
  const log = opts.log ?? (() => {});

  const plans = cases.flatMap((c) => dtypes.map((dtype) => {
    const names = modelMatrices(c.model.config, c.rows, c.cols);
    if (names.length === 0) throw new Error(`${c.model.name} has no ${c.rows}x${c.cols} matrix`);
    const bytes = alignUp(tensorBytes(dtype, [c.rows, c.cols]));
    const copies = Math.max(1, Math.min(Math.max(names.length, Math.ceil(minBytes / bytes)), Math.floor(maxBytes / bytes)));
    return { ...c, dtype, name: names[0], bytes, copies };
  }));
  const region = alignUp(Math.max(minBytes, ...plans.map((p) => p.bytes * p.copies)));
  const maxCols = Math.max(...cases.map((c) => c.cols));
  const maxRows = Math.max(...cases.map((c) => c.rows));
  const engine = Engine.create(region + 4 * (maxRows + maxCols) + activationBytes(maxCols) + 4096);
  const base = engine.tensor([region / 4]);
  engine.reserveScratch(activationBytes(maxCols));
  const xAll = engine.tensor([maxCols]);
  const outAll = engine.tensor([maxRows]);

  // Written first: untouched pages all map the kernel's one zero page, which reads at cache speed.
  base.f32().fill(1);
  const readMs = medianMs("sum_f32", () => engine.kernels.sum_f32(base.offset, base.size), time);
  const readGbps = region / readMs / 1e6;
  log(`read bandwidth (sum_f32 over ${(region / 1e6).toFixed(0)} MB): ${readGbps.toFixed(1)} GB/s`);
  const rounds = 1 << 20;
  const peakGflops = (80 * rounds) / medianMs("mul_add_f32", () => engine.kernels.mul_add_f32(rounds, 1), time) / 1e6;
  log(`mul + add peak (mul_add_f32): ${peakGflops.toFixed(1)} GFLOP/s`);

  const kernels: KernelResult[] = [];
  let values: { key: string; w: Float32Array } | undefined;
  for (const p of plans) {
    const key = `${p.model.name}/${p.name}`;
    if (values?.key !== key) values = { key, w: randomTensor(p.model.config, p.name, 1) };
    const w = values.w;
    const encoded = quantize(p.dtype, w);
    const mats = Array.from({ length: p.copies }, (_, i) => {
      const t = new Tensor(engine, p.dtype, [p.rows, p.cols], base.offset + i * p.bytes);
      t.bytesView().set(encoded);
      return t;
    });
    // x: the last row scaled back to [-1, 1) (randomTensor scales by 1/sqrt(cols)): activation-like values.
    const x = new Tensor(engine, "f32", [p.cols], xAll.offset);
    x.write(w.subarray(w.length - p.cols).map((v) => v * Math.sqrt(p.cols)));
    const out = new Tensor(engine, "f32", [p.rows], outAll.offset);
    let i = 0;
    const ms = medianMs(`${key} ${p.dtype}`, () => {
      matvec(out, mats[i], x);
      i = i + 1 === mats.length ? 0 : i + 1;
    }, time);
    const moved = tensorBytes(p.dtype, [p.rows, p.cols]) + 4 * (p.rows + p.cols);
    const r: KernelResult = {
      kernel: `matvec_${p.dtype}`, model: p.model.name, shape: `${p.rows}x${p.cols}`, dtype: p.dtype, ms,
      gflops: (2 * p.rows * p.cols) / ms / 1e6, gbps: moved / ms / 1e6,
    };
    kernels.push(r);
    log(`${r.model} ${r.shape} ${r.dtype}: ${ms.toFixed(3)} ms, ${r.gflops.toFixed(2)} GFLOP/s, ` +
      `${r.gbps.toFixed(1)} GB/s (${p.copies} matrices, ${((p.copies * p.bytes) / 1e6).toFixed(0)} MB)`);
  }
  return { kernels, read_gbps: readGbps, peak_gflops: peakGflops };
}
