// Fitting one layer's predictor: AdamW on shuffled minibatches of the weighted BCE, the tail of the samples held
// out (neighbouring tokens are alike, so a random split would leak), early stopping on the held-out loss with the
// best weights kept. Seeded: the same data, options and seed give the same predictor.
import { DynactError } from "../../engine/errors";
import type { LayerMetrics } from "../../models/gates/predictor-file";
import { XorShiftStar } from "../../models/sampler";
import { AdamW } from "./adamw";
import { EngineLinear } from "./engine-linear";
import { allocParams, initParams, paramList, Workspace, type LowRankShape, type Params } from "./low-rank";

export interface TrainOptions {
  /** At most this many passes over the training rows. */
  epochs: number;
  batch: number;
  lr: number;
  weightDecay: number;
  /** Stop after this many epochs without a lower held-out loss. */
  patience: number;
  /** Fraction of the rows (the last ones) held out. */
  heldOut: number;
  /** A positive integer. */
  seed: number;
}

export const TRAIN_DEFAULTS: TrainOptions = { epochs: 30, batch: 64, lr: 1e-2, weightDecay: 1e-2, patience: 3, heldOut: 0.2, seed: 1 };

/** n rows: inputs x [n×dim], labels y [n×hidden] (0 or 1). */
export interface Dataset {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

export interface Trained {
  params: Params;
  metrics: LayerMetrics;
}

export function trainPredictor(
  data: Dataset, shape: LowRankShape, opts: TrainOptions, onEpoch?: (epoch: number, heldOutLoss: number) => void,
): Trained {
  const { dim: d, hidden: h, rank: r } = shape;
  const nHeld = Math.max(1, Math.round(data.n * opts.heldOut));
  const nTrain = data.n - nHeld;
  if (nTrain < 1) throw new DynactError(`${data.n} samples are too few to train on and hold some out`);
  const pw = positiveWeight(data.y.subarray(0, nTrain * h));
  // Parameters, gradients, activations and the minibatch live in the engine the linear layers run on.
  const B = opts.batch;
  const values = 2 * (r * d + r + h * r + h) + B * (4 * r + 2 * h + d);
  const linear = new EngineLinear(4 * values + 64 * 16, B, Math.max(h, r));
  const alloc = (n: number) => linear.alloc(n);
  const rng = new XorShiftStar(opts.seed);
  const params = allocParams(shape, alloc);
  initParams(params, shape, rng);
  const grads = allocParams(shape, alloc);
  const adamw = new AdamW(paramList(params), [true, false, true, false], opts);
  const ws = new Workspace(shape, B, alloc, linear);
  const bx = linear.alloc(B * d);
  const by = new Uint8Array(B * h);
  const order = Int32Array.from({ length: nTrain }, (_, i) => i);

  let best = { params: copy(params), ...evaluate(ws, params, bx, data, nTrain, pw), epoch: 0 };
  for (let epoch = 1, stale = 0; epoch <= opts.epochs && stale < opts.patience; epoch++) {
    shuffle(order, rng);
    for (let at = 0; at < nTrain; at += B) {
      const rows = Math.min(B, nTrain - at);
      for (let b = 0; b < rows; b++) {
        const row = order[at + b];
        bx.set(data.x.subarray(row * d, (row + 1) * d), b * d);
        by.set(data.y.subarray(row * h, (row + 1) * h), b * h);
      }
      ws.forward(params, bx, rows);
      ws.backward(params, bx, by, rows, pw, grads);
      adamw.step(paramList(grads));
    }
    const e = evaluate(ws, params, bx, data, nTrain, pw);
    onEpoch?.(epoch, e.loss);
    if (e.loss < best.loss) {
      best = { params: copy(params), ...e, epoch };
      stale = 0;
    } else {
      stale++;
    }
  }
  const { tp, fp, fn } = best;
  const recall = tp + fn ? tp / (tp + fn) : 1;
  const precision = tp + fp ? tp / (tp + fp) : 1;
  const cells = nHeld * h;
  return {
    params: best.params,
    metrics: {
      recall, precision, f1: recall + precision ? (2 * recall * precision) / (recall + precision) : 0,
      predicted_sparsity: 1 - (tp + fp) / cells, oracle_sparsity: 1 - (tp + fn) / cells,
      held_out_loss: best.loss, epochs: best.epoch,
    },
  };
}

/** neg/pos over the training labels, so that both classes weigh the same in the loss (1 if either is absent). */
function positiveWeight(y: Uint8Array): number {
  let pos = 0;
  for (let i = 0; i < y.length; i++) pos += y[i];
  return pos === 0 || pos === y.length ? 1 : (y.length - pos) / pos;
}

/** Loss and confusion counts (predicted: logit > 0) over the held-out rows [from, n); bx: the minibatch buffer. */
function evaluate(ws: Workspace, p: Params, bx: Float32Array, data: Dataset, from: number, pw: number) {
  const { dim: d, hidden: h } = ws.shape;
  let loss = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let at = from; at < data.n; at += ws.batch) {
    const B = Math.min(ws.batch, data.n - at);
    const y = data.y.subarray(at * h, (at + B) * h);
    bx.set(data.x.subarray(at * d, (at + B) * d));
    ws.forward(p, bx, B);
    loss += B * ws.loss(y, B, pw);
    for (let i = 0; i < B * h; i++) {
      const predicted = ws.s[i] > 0;
      if (predicted && y[i]) tp++;
      else if (predicted) fp++;
      else if (y[i]) fn++;
    }
  }
  return { loss: loss / (data.n - from), tp, fp, fn };
}

function copy(p: Params): Params {
  return { w1: p.w1.slice(), b1: p.b1.slice(), w2: p.w2.slice(), b2: p.b2.slice() };
}

/** Fisher–Yates with the seeded generator. */
function shuffle(a: Int32Array, rng: XorShiftStar): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng.nextF32() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}
