// A model that cannot fit the wasm32 memory is refused before a byte of it is read, with what it needs, the limit,
// and what would fit: the first of f16 / q8_0 / q4_0 (as `dynact convert --to gguf --dtype` writes it) that brings
// it under the limit, and the longest context its current weights leave room for.
import path from "node:path";
import { MAX_BYTES, PAGE } from "../engine/arena";
import { isQuantized, QK, type DType } from "../engine/dtype";
import { formatBytes } from "../engine/engine";
import type { Checkpoint, TensorEntry } from "./checkpoint";
import type { LlamaConfig } from "./config";
import { LlamaModel } from "./llama";
import { weightBytes, type DownLayout } from "./weights";

/** The most engine memory a model may take: the wasm32 maximum less the kernels' reserve page and alignment. */
export const ENGINE_LIMIT = MAX_BYTES - 2 * PAGE;

/** The weight types `dynact convert --to gguf` writes that are smaller than f32, best quality first. */
const SMALLER: readonly DType[] = ["f16", "q8_0", "q4_0"];

export interface MemoryNeed {
  weights: number;
  /** KV cache, RoPE table, activations and scratch at the config's context. */
  state: number;
  /** Tensors modules keep in the engine (predictors). */
  reserve: number;
  total: number;
}

export function memoryNeed(ckpt: Checkpoint, config: LlamaConfig, layout: DownLayout = {}, reserve = 0): MemoryNeed {
  const weights = weightBytes(ckpt, layout);
  const state = LlamaModel.stateBytes(config);
  return { weights, state, reserve, total: weights + state + reserve };
}

/**
 * The checkpoint as `dynact convert --to gguf --dtype DTYPE` would write it: matrices in `dtype` (f16 where
 * quantized rows are not a multiple of 32 values), norm vectors as they are (they load as f32 anyway).
 */
export function asDType(ckpt: Checkpoint, dtype: DType): Checkpoint {
  const retype = (e: TensorEntry): TensorEntry => {
    if (e.shape.length === 1) return e;
    return { ...e, dtype: isQuantized(dtype) && e.shape[e.shape.length - 1]! % QK !== 0 ? "f16" : dtype };
  };
  return { ...ckpt, tensors: new Map([...ckpt.tensors].map(([name, e]) => [name, retype(e)])) };
}

/** The longest context (KV cache positions) that fits with these weights, or 0 when none does. */
function longestContext(config: LlamaConfig, fixed: number): number {
  const fits = (seqLen: number) => fixed + LlamaModel.stateBytes({ ...config, seqLen }) <= ENGINE_LIMIT;
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = config.seqLen;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Why the model cannot load and what would fit instead, in one line: the first smaller weight type that fits at
 * this context (and, when the current weights fit with a shorter context, that context); else the first type —
 * current, then smaller — that fits with a shorter context; else that nothing does.
 */
export function memoryLimitMessage(ckpt: Checkpoint, config: LlamaConfig, layout: DownLayout = {}, reserve = 0): string {
  const need = memoryNeed(ckpt, config, layout, reserve);
  const parts = [`weights ${formatBytes(need.weights)}`, `KV cache and buffers ${formatBytes(need.state)} for a context of ${config.seqLen}`];
  if (reserve > 0) parts.push(`gate tensors ${formatBytes(reserve)}`);
  let msg = `${ckpt.path}: the model needs ${formatBytes(need.total)} of engine memory (${parts.join(" + ")}) but wasm32 memory ` +
    `is limited to ${formatBytes(MAX_BYTES)}`;
  const model = ckpt.path.replace(/[/\\]+$/, "");
  const convert = (dtype: DType) => `\`dynact convert -m ${model} --to gguf --dtype ${dtype} -o ` +
    `${path.basename(model).replace(/\.(gguf|bin|safetensors)$/i, "")}-${dtype}.gguf\``;
  const options = SMALLER.map((dtype) => ({ dtype, ...memoryNeed(asDType(ckpt, dtype), config, layout, reserve) }))
    .filter((o) => o.total < need.total);
  const context = (weights: number) => longestContext(config, weights + reserve);
  const fit = options.find((o) => o.total <= ENGINE_LIMIT);
  if (fit) {
    msg += `; as ${fit.dtype} it would need ${formatBytes(fit.total)}: convert it with ${convert(fit.dtype)}`;
    const n = context(need.weights);
    return n > 0 ? `${msg}; or cap the context at ${n} positions (--ctx ${n})` : msg;
  }
  const n = context(need.weights);
  if (n > 0) return `${msg}; it fits if you cap the context at ${n} positions (--ctx ${n})`;
  for (const o of options) {
    const m = context(o.weights);
    if (m > 0) return `${msg}; as ${o.dtype} it fits with a context of at most ${m} positions: convert it with ${convert(o.dtype)}, then pass --ctx ${m}`;
  }
  const smallest = options[options.length - 1] ?? { dtype: [...new Set([...ckpt.tensors.values()].filter((e) => e.shape.length > 1).map((e) => e.dtype))].join("/"), ...need };
  return `${msg}; even as ${smallest.dtype} its weights take ${formatBytes(smallest.weights)}: no weight type dynact loads makes it fit`;
}
