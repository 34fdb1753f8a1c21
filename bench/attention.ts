// The attention block alone at a given head sparsity, keep vs skip KV policy, at a given context, on one layer of
// random weights. The block first runs every position up to the context (so the cache holds what the policy wrote,
// holes included), then the last position is timed repeatedly.
import { Bench } from "tinybench";
import { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import { AttentionBlock } from "../models/attention";
import type { LlamaConfig } from "../models/config";
import { topHeadsGate, type KvPolicy } from "../models/gates/head-gate";
import { KVCache } from "../models/kv-cache";
import { RopeTable } from "../models/rope";
import type { LayerWeights } from "../models/weights";

export interface AttentionBenchRow {
  shape: string;
  context: number;
  head_sparsity: number;
  policy: KvPolicy;
  ms: number;
  /** dense ms / this ms */
  speedup: number;
}

export async function runAttentionBench(opts: {
  dim?: number;
  heads?: number;
  contexts?: number[];
  sparsities?: number[];
  time?: number;
  log?: (line: string) => void;
} = {}): Promise<AttentionBenchRow[]> {
  const dim = opts.dim ?? 768;
  const heads = opts.heads ?? 12;
  const rows: AttentionBenchRow[] = [];
  for (const context of opts.contexts ?? [256, 1024]) {
    const c: LlamaConfig = { dim, hiddenDim: 4, nLayers: 1, nHeads: heads, nKvHeads: heads, vocabSize: 4, seqLen: context,
      ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
    const engine = Engine.create(KVCache.bytes(c) + RopeTable.bytes(context, dim / heads) + AttentionBlock.bytes(c) + 4 * 4 * dim * dim + (4 << 20));
    const fill = (t: Tensor, seed: number) => {
      const a = t.f32();
      for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37 + seed) / Math.sqrt(dim);
      return t;
    };
    const m = (seed: number) => fill(engine.tensor([dim, dim]), seed);
    const unused = engine.tensor([1]);
    const lw: LayerWeights = { attnNorm: unused, wq: m(1), wk: m(2), wv: m(3), wo: m(4), ffnNorm: unused, wGate: unused, wUp: unused,
      wDown: unused, downTransposed: false, woTransposed: true };
    const cache = new KVCache(engine, c);
    const block = new AttentionBlock(engine, c, cache, new RopeTable(engine, context, dim / heads, 10000));
    const x = fill(engine.tensor([dim]), 9);
    const out = engine.tensor([dim]);
    let denseMs = 0;
    for (const sparsity of opts.sparsities ?? [0, 0.5, 0.75]) {
      for (const policy of sparsity === 0 ? (["keep"] as const) : (["keep", "skip"] as const)) {
        block.configure(sparsity === 0 ? null : topHeadsGate(`topk:${1 - sparsity}`, heads), policy, true);
        for (let pos = 0; pos < context; pos++) {
          x.f32()[pos % dim] += 0.01; // vary the input so the chosen heads vary
          block.run(0, lw, x, out, pos);
        }
        const bench = new Bench({ time: opts.time ?? 300, warmup: true, warmupTime: 30 });
        bench.add("attention", () => block.run(0, lw, x, out, context - 1));
        await bench.run();
        const r = bench.tasks[0].result;
        if (r.state !== "completed") throw new Error(`benchmark task ${r.state}`);
        const ms = r.latency.p50;
        if (sparsity === 0) denseMs = ms;
        rows.push({ shape: `dim ${dim}, ${heads} heads`, context, head_sparsity: sparsity, policy, ms, speedup: denseMs / ms });
        opts.log?.(`context ${context}, head sparsity ${sparsity} ${policy}: ${ms.toFixed(3)} ms (${(denseMs / ms).toFixed(2)}×)`);
      }
    }
  }
  return rows;
}
