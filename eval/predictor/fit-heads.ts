// Fitting head predictors: dense passes over the text record each layer's block input x and every head's
// contribution norm ‖W_o,h · o_h‖; the label of a token is its top fraction of heads by that norm (the norm oracle's
// choice), and one low-rank predictor per layer learns it from x — the same trainer and file format as the MLP
// predictors, with units "heads".
import { DynactError } from "../../engine/errors";
import { modelFingerprint, textFingerprint } from "../../models/gates/calibration";
import { selectTopHeads } from "../../models/gates/head-gate";
import type { Predictor, PredictorHeader, Sigma } from "../../models/gates/predictor-file";
import type { LlamaModel } from "../../models/llama";
import { perplexity } from "../perplexity";
import { packWeights } from "./fit";
import { TRAIN_DEFAULTS, trainPredictor, type TrainOptions } from "./train";

export interface FitHeadsOptions {
  /** Fraction of heads kept (the label: top fraction by contribution norm). */
  keep: number;
  rank: number;
  sigma: Sigma;
  /** Positions per window including BOS (default: the model's context). */
  ctx?: number;
  maxSamples?: number;
  train?: Partial<TrainOptions>;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export function fitHeadPredictors(model: LlamaModel, ids: readonly number[], opts: FitHeadsOptions): Predictor {
  const { nLayers, dim, nHeads } = model.config;
  if (!model.weights.layers[0].woTransposed) throw new DynactError("fitting head predictors needs the model loaded with transposeWo");
  const every = Math.max(1, Math.ceil(ids.length / (opts.maxSamples ?? 2048)));
  const k = Math.max(1, Math.round(opts.keep * nHeads));
  const xs = Array.from({ length: nLayers }, () => [] as Float32Array[]);
  const ys = Array.from({ length: nLayers }, () => [] as Uint8Array[]);
  let token = 0;
  const top = new Int32Array(nHeads);
  const order = new Int32Array(nHeads);
  model.configureHeads(null, "keep");
  model.traceHeads((l, x, norms) => {
    if (l === 0) token++;
    if (token % every !== 0) return;
    xs[l].push(x.read());
    const y = new Uint8Array(nHeads);
    const n = selectTopHeads(norms, k, top, order);
    for (let i = 0; i < n; i++) y[top[i]] = 1;
    ys[l].push(y);
  });
  try {
    perplexity(model, ids, { ctx: opts.ctx, onProgress: (d, t) => opts.onProgress?.("tracing", d, t) });
  } finally {
    model.traceHeads(null);
  }
  const train = { ...TRAIN_DEFAULTS, ...opts.train };
  const shape = { dim, hidden: nHeads, rank: opts.rank, sigma: opts.sigma };
  const trained = xs.map((rows, l) => {
    const n = rows.length;
    const x = new Float32Array(n * dim);
    const y = new Uint8Array(n * nHeads);
    rows.forEach((r, i) => x.set(r, i * dim));
    ys[l].forEach((r, i) => y.set(r, i * nHeads));
    const t = trainPredictor({ x, y, n }, shape, train);
    opts.onProgress?.("training", l + 1, nLayers);
    return t;
  });
  const header: PredictorHeader = {
    format: "dynact-predictor", version: 1, units: "heads",
    model_fingerprint: modelFingerprint(model), text_fingerprint: textFingerprint(ids),
    label: `topk:${opts.keep}`, label_thresholds: null,
    activation: model.config.activation, sigma: opts.sigma, rank: opts.rank, dim, hidden: nHeads, layers: nLayers,
    lookahead: false, tokens: ids.length,
    training: { samples: xs[0].length, epochs: train.epochs, batch: train.batch, lr: train.lr, weight_decay: train.weightDecay,
      patience: train.patience, held_out: train.heldOut, seed: train.seed },
    metrics: trained.map((t) => t.metrics),
  };
  return { header, weights: packWeights(header, trained.map((t) => t.params)) };
}
