// An f32 training model with every buffer in engine memory (WasmOps), sized once for batches up to maxB × maxT.
// Without `tensor` the parameters start at zero (a resumed run restores them).
import { headSize, kvDim, type LlamaConfig } from "../config";
import { TrainModel } from "./model";
import { Params } from "./params";
import { WasmOps } from "./wasm-ops";

export function buildTrainModel(
  config: LlamaConfig, tied: boolean, tensor: ((name: string) => ArrayLike<number>) | undefined, maxB: number, maxT: number,
): TrainModel {
  const sizes = [...Params.bufferSizes(config, tied), ...TrainModel.bufferSizes(config, maxB, maxT)];
  const width = Math.max(config.dim, config.hiddenDim, config.vocabSize, kvDim(config));
  const ops = new WasmOps(WasmOps.floats(sizes), { rows: maxB * maxT, width, seq: maxT, headSize: headSize(config) });
  return new TrainModel(tensor ? Params.from(config, tied, tensor, ops) : new Params(config, tied, ops), maxB, maxT);
}
