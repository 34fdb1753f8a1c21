// Fitting a predictor per layer on a text: labels from the oracle rule (cett thresholds calibrated on the same
// text first), traces from dense passes, then one trained low-rank predictor per layer. With lookahead, layer l's
// predictor reads layer l-1's input (layer 0 reads its own: nothing runs before it).
import { DynactError } from "../../engine/errors";
import { modelFingerprint, textFingerprint } from "../../models/gates/calibration";
import { formatLabelRule, Labeler, type LabelRule } from "../../models/gates/label-rule";
import { layerValues, type Predictor, type PredictorHeader, type Sigma } from "../../models/gates/predictor-file";
import type { LlamaModel } from "../../models/llama";
import { calibrate } from "../calibrate";
import { collectLabelledTraces } from "./traces";
import type { Params } from "./low-rank";
import { TRAIN_DEFAULTS, trainPredictor, type TrainOptions } from "./train";

export interface FitOptions {
  label: LabelRule;
  rank: number;
  sigma: Sigma;
  lookahead: boolean;
  /** Positions per window including BOS (default: the model's context). */
  ctx?: number;
  /** Tokens traced, evenly spaced over the text (default: every token). */
  maxSamples?: number;
  train?: Partial<TrainOptions>;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export function fitPredictors(model: LlamaModel, ids: readonly number[], opts: FitOptions): Predictor {
  const { nLayers, dim, hiddenDim: hidden, activation } = model.config;
  const { label, rank, sigma, lookahead, ctx, onProgress } = opts;
  if (!Number.isInteger(rank) || rank < 1) throw new DynactError(`predictor rank must be a positive integer, got ${rank}`);
  if (label.kind === "relu" && activation !== "relu" && activation !== "relu2") {
    throw new DynactError(`relu labels need a ReLU-family activation (this model uses ${activation}: try --act relu)`);
  }
  const thresholds = label.kind === "cett"
    ? calibrate(model, ids, { kind: "cett", target: label.target }, { ctx, onProgress }).thresholds
    : null;
  const labeler = new Labeler(label, hidden, thresholds, thresholds && model.downNorms().map((t) => t.read()));
  const { samples, layers } = collectLabelledTraces(model, ids, labeler, { ctx, maxSamples: opts.maxSamples ?? ids.length, onProgress });
  const train = { ...TRAIN_DEFAULTS, ...opts.train };
  const shape = { dim, hidden, rank, sigma };
  const trained = layers.map((tr, l) => {
    const x = lookahead && l > 0 ? layers[l - 1].x : tr.x;
    const t = trainPredictor({ x, y: tr.labels, n: samples }, shape, train);
    onProgress?.("training", l + 1, nLayers);
    return t;
  });
  const header: PredictorHeader = {
    format: "dynact-predictor", version: 1,
    model_fingerprint: modelFingerprint(model), text_fingerprint: textFingerprint(ids),
    label: formatLabelRule(label),
    // JSON has no -Infinity: a keep-everything layer is stored as null.
    label_thresholds: thresholds && thresholds.map((t) => (t === -Infinity ? null : t)),
    activation, sigma, rank, dim, hidden, layers: nLayers, lookahead, tokens: ids.length,
    training: {
      samples, epochs: train.epochs, batch: train.batch, lr: train.lr, weight_decay: train.weightDecay,
      patience: train.patience, held_out: train.heldOut, seed: train.seed,
    },
    metrics: trained.map((t) => t.metrics),
  };
  return { header, weights: packWeights(header, trained.map((t) => t.params)) };
}

/** Each layer's W1, b1, W2, b2 in one array, as the file stores them. */
export function packWeights(header: PredictorHeader, params: Params[]): Float32Array[] {
  return params.map((p) => {
    const w = new Float32Array(layerValues(header));
    let at = 0;
    for (const part of [p.w1, p.b1, p.w2, p.b2]) {
      w.set(part, at);
      at += part.length;
    }
    return w;
  });
}
