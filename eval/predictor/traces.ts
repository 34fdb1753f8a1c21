// Training pairs for activation predictors: per layer, the block MLP input x the gate sees and the oracle label
// vector of every sampled token, from dense passes over the text (calibration's tracer).
import { DynactError } from "../../engine/errors";
import type { Labeler } from "../../models/gates/label-rule";
import type { LlamaModel } from "../../models/llama";
import { sampleCount, traceSamples, type CalibrateOptions } from "../calibrate";

export interface LayerTrace {
  /** [samples × dim] */
  x: Float32Array;
  /** [samples × hidden], 1 = in the oracle set */
  labels: Uint8Array;
}

export function collectLabelledTraces(
  model: LlamaModel, ids: readonly number[], labeler: Labeler, opts: CalibrateOptions,
): { samples: number; layers: LayerTrace[] } {
  const { nLayers, dim: d, hiddenDim: h } = model.config;
  const samples = sampleCount(ids.length, opts.maxSamples);
  if (samples === 0) throw new DynactError("no tokens to trace");
  const layers = Array.from({ length: nLayers }, () => ({ x: new Float32Array(samples * d), labels: new Uint8Array(samples * h) }));
  traceSamples(model, ids, opts, (l, t, g, u, x) => {
    layers[l].x.set(x, t * d);
    labeler.label(l, g, u, layers[l].labels.subarray(t * h, (t + 1) * h));
  });
  return { samples, layers };
}
