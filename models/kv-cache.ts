// Keys and values of every past position, per layer: [seqLen, nKvHeads * headSize] each.
import type { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import { kvDim, type LlamaConfig } from "./config";

export class KVCache {
  readonly keys: Tensor[];
  readonly values: Tensor[];

  constructor(engine: Engine, config: LlamaConfig) {
    const shape = [config.seqLen, kvDim(config)];
    this.keys = Array.from({ length: config.nLayers }, () => engine.tensor(shape));
    this.values = Array.from({ length: config.nLayers }, () => engine.tensor(shape));
  }

  static bytes(config: LlamaConfig): number {
    return 2 * config.nLayers * (config.seqLen * kvDim(config) * 4 + 64);
  }
}
