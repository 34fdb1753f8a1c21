// Calibrating TEAL: |x| at each of the four input points of every layer, recorded over dense passes on
// calibration text; each threshold is the quantile that zeroes the target fraction there.
import { TealRecorder, TealSparsifier, TEAL_POINTS, type TealPoint } from "../models/teal";
import type { LlamaModel } from "../models/llama";
import { quantile } from "./calibrate";
import { perplexity } from "./perplexity";

export function calibrateTeal(
  model: LlamaModel, ids: readonly number[], sparsity: number, opts: { ctx?: number; maxSamples?: number } = {},
): TealSparsifier {
  const every = Math.max(1, Math.ceil(ids.length / (opts.maxSamples ?? 512)));
  const recorder = new TealRecorder(model.config.nLayers, every);
  model.configureFfn({ gate: null, mode: "mask" });
  model.configureTeal(recorder);
  try {
    perplexity(model, ids, { ctx: opts.ctx });
  } finally {
    model.configureTeal(null);
  }
  const thresholds = recorder.values.map((points) =>
    TEAL_POINTS.map((_, p) => quantile(Float32Array.from(points[p as TealPoint]), sparsity)));
  return new TealSparsifier(`teal:${sparsity}`, thresholds);
}
