// Keys and values of every past position, per layer: [seqLen, nKvHeads * headSize] each, and which (KV head,
// position) entries hold data: [nKvHeads, seqLen] bytes, 0 where the skip KV policy left a hole.
import type { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import { kvDim, type LlamaConfig } from "./config";

export class KVCache {
  readonly keys: Tensor[];
  readonly values: Tensor[];
  readonly valid: Tensor[];

  constructor(engine: Engine, config: LlamaConfig) {
    const shape = [config.seqLen, kvDim(config)];
    this.keys = Array.from({ length: config.nLayers }, () => engine.tensor(shape));
    this.values = Array.from({ length: config.nLayers }, () => engine.tensor(shape));
    this.valid = Array.from({ length: config.nLayers }, () => engine.tensor([config.nKvHeads, config.seqLen], "u8"));
  }

  static bytes(config: LlamaConfig): number {
    return config.nLayers * (2 * (config.seqLen * kvDim(config) * 4 + 64) + config.nKvHeads * config.seqLen + 64);
  }
}
