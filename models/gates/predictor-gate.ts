// A neuron gate that predicts the active set from the block input with a trained low-rank predictor per layer
// (DejaVu / PowerInfer): logits = W2·σ(W1·x + b1) + b2, then S = {i : logit_i > 0} or the top-k logits.
// The set is known before the gate product, so all three MLP products can be gathered. A lookahead predictor
// chooses layer l+1's set while layer l runs (from layer l's input), as DejaVu's asynchronous predictor does.
// The predictor's own products are reported as selectMacs, so the FFN statistics count them.
import { add, relu } from "../../engine/ops/elementwise";
import { matvec } from "../../engine/ops/matvec";
import { selectThreshold, selectTopk } from "../../engine/ops/select";
import type { Tensor } from "../../engine/tensor";
import type { LlamaModel } from "../llama";
import { Labeler, parseLabelRule } from "./label-rule";
import type { GateScratch, NeuronGate } from "./neuron-gate";
import { predictorMacs, type Predictor, type PredictorHeader, type Sigma } from "./predictor-file";

const TENSORS_PER_LAYER = 4;
const SCRATCH_TENSORS = 3;

/** Engine bytes a PredictorGate allocates for this predictor (pass as loadModel's reserveBytes). */
export function predictorBytes(h: PredictorHeader): number {
  const { rank: r, dim: d, hidden: n, layers } = h;
  const values = layers * (r * d + r + n * r + n) + r + 2 * n;
  return 4 * values + 64 * (layers * TENSORS_PER_LAYER + SCRATCH_TENSORS);
}

export interface LayerTensors {
  w1: Tensor;
  b1: Tensor;
  w2: Tensor;
  b2: Tensor;
}

// Tensors of the predictors a model already holds: gates built again from the same file (one per kept fraction,
// one per study cell) share them, so the bytes reserved for one predictor suffice.
const loaded = new WeakMap<LlamaModel, Map<string, PredictorTensors>>();

export interface PredictorTensors {
  layers: LayerTensors[];
  /** Scratch for one evaluation: σ(W1·x + b1), the logits, and a lookahead set. */
  mid: Tensor;
  logits: Tensor;
  next: Tensor;
}

/** A predictor's per-layer weights and scratch in the model's engine (within its reserved bytes), loaded once. */
export function predictorTensors(p: Predictor, model: LlamaModel): PredictorTensors {
  const h0 = p.header;
  const key = JSON.stringify([h0.units, h0.model_fingerprint, h0.text_fingerprint, h0.label, h0.rank, h0.sigma, h0.lookahead,
    h0.training, h0.metrics.map((m) => m.held_out_loss)]);
  let byKey = loaded.get(model);
  if (!byKey) loaded.set(model, (byKey = new Map()));
  const cached = byKey.get(key);
  if (cached) return cached;
  const { rank: r, dim: d, hidden: h } = h0;
  const e = model.engine;
  const layers = p.weights.map((w) => {
    let at = 0;
    const part = (shape: number[]) => e.from(w.subarray(at, (at += shape.reduce((a, b) => a * b))), shape);
    return { w1: part([r, d]), b1: part([r]), w2: part([h, r]), b2: part([h]) };
  });
  const tensors = { layers, mid: e.tensor([r]), logits: e.tensor([h]), next: e.tensor([h], "i32") };
  byKey.set(key, tensors);
  return tensors;
}

/** logits = W2·σ(W1·x + b1) + b2 (mid: scratch of the rank). */
export function predictorLogits(t: LayerTensors, sigma: Sigma, x: Tensor, mid: Tensor, logits: Tensor): void {
  matvec(mid, t.w1, x);
  add(mid, mid, t.b1);
  if (sigma === "relu") relu(mid, mid);
  matvec(logits, t.w2, mid);
  add(logits, logits, t.b2);
}

export class PredictorGate implements NeuronGate {
  readonly chooses = "input" as const;
  selectMacs = 0;
  private readonly layers: LayerTensors[];
  private readonly mid: Tensor; // σ(W1·x + b1)
  private readonly logits: Tensor;
  private readonly next: Tensor; // lookahead: the set chosen for the next layer
  private nextCount = 0;
  private readonly k: number | null;
  private readonly macs: number;
  private readonly labeler: Labeler;
  private readonly oracleSet: Uint8Array;

  /** keep: null selects logit > 0; a fraction keeps that many top logits. */
  constructor(readonly spec: string, private readonly p: Predictor, model: LlamaModel, keep: number | null) {
    const h = p.header.hidden;
    ({ layers: this.layers, mid: this.mid, logits: this.logits, next: this.next } = predictorTensors(p, model));
    this.k = keep === null ? null : Math.round(keep * h);
    this.macs = predictorMacs(p.header);
    const t = p.header.label_thresholds;
    this.labeler = new Labeler(parseLabelRule(p.header.label), h, t && t.map((v) => v ?? -Infinity),
      t && model.downNorms().map((n) => n.read()));
    this.oracleSet = new Uint8Array(h);
  }

  select(l: number, x: Tensor, _actGate: Tensor | null, s: GateScratch): number {
    if (!this.p.header.lookahead) {
      this.selectMacs = this.macs;
      return this.predict(l, x, s.idx, s.work);
    }
    let count: number;
    if (l === 0) {
      count = this.predict(0, x, s.idx, s.work);
    } else {
      s.idx.i32().set(this.next.i32().subarray(0, this.nextCount));
      count = this.nextCount;
    }
    const ahead = l + 1 < this.layers.length;
    if (ahead) this.nextCount = this.predict(l + 1, x, this.next, s.work);
    this.selectMacs = this.macs * ((l === 0 ? 1 : 0) + (ahead ? 1 : 0));
    return count;
  }

  /** The label rule's set from the dense activations, to score the prediction against (mask mode). */
  oracle(l: number, actGate: Tensor, up: Tensor): Uint8Array {
    this.labeler.label(l, actGate.f32(), up.f32(), this.oracleSet);
    return this.oracleSet;
  }

  /** Predictor l's set for input x, written to idx. */
  private predict(l: number, x: Tensor, idx: Tensor, work: Tensor): number {
    predictorLogits(this.layers[l], this.p.header.sigma, x, this.mid, this.logits);
    return this.k === null ? selectThreshold(idx, this.logits, 0) : selectTopk(idx, this.logits, this.k, work);
  }
}
