// Fitting per-layer thresholds for threshold gates on calibration text (dense forward passes, traced). A gate
// keeps s_i > ε and drops s_i ≤ ε (a score of exactly ε is dropped: on a ReLU model ε = 0 drops the exact zeros).
//   cats:S          ε_l = the S-quantile of |act(g)| in layer l (CATS): dropping s ≤ ε_l drops a fraction ≥ S
//   cett:T          ε_l such that the mean CETT of layer l is T, score |act(g_i)|·‖W_down[:,i]‖
//   cett-global:T   one ε for every layer, mean CETT over layers T
// CETT(ε) of a token = ‖Σ_{i: s_i≤ε} a_i·W_down[:,i]‖ / ‖W_down·a‖ with a = act(g) ⊙ u; it is evaluated with the
// sparse kernels (column scatter over the dropped neurons) on a separate engine holding the traces.
import { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { gather, scatterAxpy } from "../engine/ops/sparse";
import { selectThreshold } from "../engine/ops/select";
import type { Tensor } from "../engine/tensor";
import { modelFingerprint, textFingerprint, type Calibration } from "../models/gates/calibration";
import { CALIBRATED_KINDS, formatGateSpec, isCalibratedSpec, type CalibratedSpec } from "../models/gates/spec";
import type { ScoreKind } from "../models/gates/threshold-gate";
import type { LlamaModel } from "../models/llama";
import { windows } from "./text";
import { matrixValues } from "../engine/quant";

export type { CalibratedSpec };

export interface CalibrateOptions {
  ctx?: number;
  /** Tokens whose activations are kept for fitting (evenly spaced over the text); default 1024. */
  maxSamples?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

const BISECTION_STEPS = 30;

export function calibrate(model: LlamaModel, ids: readonly number[], spec: CalibratedSpec, opts: CalibrateOptions = {}): Calibration {
  const { nLayers, hiddenDim: h } = model.config;
  // Another spec (parseGateSpec returns any) fell through to cett-global with an undefined target: thresholds of nothing.
  if (!isCalibratedSpec(spec)) {
    throw new DynactError(`${formatGateSpec(spec)} is not calibrated: calibrate takes ${CALIBRATED_KINDS.map((k) => `${k}:…`).join(", ")}`);
  }
  const score: ScoreKind = spec.kind === "cats" ? "act" : "act-downnorm";
  const traces = collectTraces(model, ids, opts);
  const norms = score === "act-downnorm" ? model.downNorms().map((t) => t.read()) : null;
  // Activations a and scores s per layer, [samples × hidden], computed in place over the traces (no second copy):
  // up becomes a = act(g)·u, then gate becomes s.
  const acts = traces.map((tr) => {
    for (let i = 0; i < tr.up.length; i++) tr.up[i] *= tr.gate[i];
    return tr.up;
  });
  const scores = traces.map((tr, l) => {
    const g = tr.gate;
    for (let i = 0; i < g.length; i++) g[i] = Math.abs(g[i]) * (norms ? norms[l][i % h] : 1);
    return g;
  });

  const cett = new CettEvaluator(model, acts, scores);
  const layers = Array.from({ length: nLayers }, (_, l) => l);
  let thresholds: number[];
  if (spec.kind === "cats") {
    thresholds = scores.map((s) => quantile(s, spec.sparsity));
  } else if (spec.kind === "cett") {
    thresholds = layers.map((l) => {
      opts.onProgress?.("fitting", l, nLayers);
      return cett.fit([l], spec.target, Float32Array.from(scores[l]).sort());
    });
    opts.onProgress?.("fitting", nLayers, nLayers); // the last layer done: the progress line ends
  } else {
    const pooled = new Float32Array(scores.reduce((n, s) => n + s.length, 0));
    scores.reduce((at, s) => (pooled.set(s, at), at + s.length), 0);
    thresholds = new Array<number>(nLayers).fill(cett.fit(layers, spec.target, pooled.sort()));
  }
  const measured = {
    active_fraction: scores.map((s, l) => s.reduce((n, v) => n + (v > thresholds[l] ? 1 : 0), 0) / s.length),
    cett: layers.map((l) => cett.mean(l, thresholds[l])),
  };
  return {
    format: "dynact-calibration", version: 1, gate: formatGateSpec(spec), score, thresholds,
    model_fingerprint: modelFingerprint(model), text_fingerprint: textFingerprint(ids), tokens: ids.length, measured,
  };
}

interface Trace {
  gate: Float32Array; // act(g) of the sampled tokens, [samples × hidden]
  up: Float32Array;
}

/** Keeps every k-th token's act(g) and u per layer. */
function collectTraces(model: LlamaModel, ids: readonly number[], opts: CalibrateOptions): Trace[] {
  const { nLayers, hiddenDim: h } = model.config;
  const samples = sampleCount(ids.length, opts.maxSamples);
  if (samples === 0) throw new DynactError("no calibration tokens");
  const traces = Array.from({ length: nLayers }, () => ({ gate: new Float32Array(samples * h), up: new Float32Array(samples * h) }));
  traceSamples(model, ids, opts, (l, t, g, u) => {
    traces[l].gate.set(g, t * h);
    traces[l].up.set(u, t * h);
  });
  return traces;
}

/** Sees layer l of sample t: act(g), u and the block input x (live views of engine memory: copy what you keep). */
export type SampleVisitor = (l: number, t: number, actGate: Float32Array, up: Float32Array, x: Float32Array) => void;

const sampleStride = (tokens: number, maxSamples = 1024) => Math.max(1, Math.ceil(tokens / maxSamples));

/** How many of `tokens` tokens traceSamples visits: every k-th, at most maxSamples (default 1024). */
export function sampleCount(tokens: number, maxSamples?: number): number {
  return Math.ceil(tokens / sampleStride(tokens, maxSamples));
}

/** Dense passes over the text in windows from the model's BOS (no gate); `visit` sees every k-th token's layers. */
export function traceSamples(model: LlamaModel, ids: readonly number[], opts: CalibrateOptions, visit: SampleVisitor): void {
  const ctx = opts.ctx ?? model.config.seqLen;
  if (!Number.isInteger(ctx) || ctx < 1 || ctx > model.config.seqLen) {
    throw new DynactError(`ctx ${ctx} must be an integer from 1 to the model's context of ${model.config.seqLen}`);
  }
  const bos = model.bosId;
  const every = sampleStride(ids.length, opts.maxSamples);
  let position = 0; // index of the current token in ids
  let sample = -1;
  model.traceFfn((l, g, u, x) => {
    if (sample >= 0) visit(l, sample, g.f32(), u.f32(), x.f32());
  });
  model.configureFfn({ gate: null, mode: "mask" });
  try {
    for (const w of windows(ids, ctx)) {
      let token = bos;
      for (let pos = 0; pos < w.ids.length; pos++, position++) {
        // The activations of input token `token` at this position; sample the text tokens evenly.
        sample = position % every === 0 ? position / every : -1;
        model.forward(token, pos);
        token = w.ids[pos];
        opts.onProgress?.("tracing", position + 1, ids.length);
      }
    }
  } finally {
    model.traceFfn(null);
  }
}

/**
 * The threshold ε for which dropping the values v ≤ ε (keeping v > ε) drops a fraction q of them: the ⌈q·n⌉-th
 * smallest value. Values tied with it are dropped too, so the fraction dropped is at least q — on a ReLU model
 * where more than a fraction q are exact zeros, ε = 0 and every zero is dropped. q = 0 (or q·n < 1): −∞, keep
 * everything.
 */
export function quantile(values: Float32Array, q: number): number {
  return quantileOfSorted(Float32Array.from(values).sort(), q);
}

/** quantile() of values sorted ascending. */
function quantileOfSorted(sorted: Float32Array, q: number): number {
  // How many values to drop; the slack absorbs rounding in q·n (0.3 · 10 = 3.0000000000000004).
  const drop = Math.min(sorted.length, Math.ceil(q * sorted.length - 1e-6));
  return drop <= 0 ? -Infinity : sorted[drop - 1];
}

/** Mean CETT of the sampled tokens of each layer for a threshold, computed with the engine's sparse kernels. */
class CettEvaluator {
  private readonly engine: Engine;
  private readonly wdT: Tensor; // W_downᵀ of the layer loaded last
  private readonly a: Tensor[];
  private readonly negScores: Tensor[];
  private readonly full: number[][]; // ‖W_down·a‖ per layer and sample
  private readonly idx: Tensor;
  private readonly compact: Tensor;
  private readonly out: Tensor;
  private readonly samples: number;
  private loaded = -1;

  constructor(private readonly model: LlamaModel, acts: Float32Array[], scores: Float32Array[]) {
    const { dim, hiddenDim: h } = model.config;
    this.samples = acts[0].length / h;
    const traceBytes = acts.length * 2 * acts[0].length * 4;
    this.engine = Engine.create(traceBytes + 4 * (h * dim + 3 * h + dim) + 64 * (2 * acts.length + 8));
    this.wdT = this.engine.tensor([h, dim]);
    this.a = acts.map((a) => this.engine.from(a, [this.samples, h]));
    this.negScores = scores.map((s) => {
      const t = this.engine.tensor([this.samples, h]);
      const v = t.f32();
      for (let i = 0; i < s.length; i++) v[i] = -s[i];
      return t;
    });
    this.idx = this.engine.tensor([h], "i32");
    this.compact = this.engine.tensor([h]);
    this.out = this.engine.tensor([dim]);
    const all = this.engine.tensor([h], "i32");
    all.i32().forEach((_, i, arr) => (arr[i] = i));
    this.full = acts.map((_, l) => {
      this.load(l);
      return Array.from({ length: this.samples }, (_, t) => {
        scatterAxpy(this.out, this.wdT, this.a[l].row(t), all, h);
        return norm(this.out.f32());
      });
    });
  }

  private load(l: number): void {
    if (this.loaded === l) return;
    const lw = this.model.weights.layers[l];
    const w = matrixValues(lw.wDown);
    if (lw.downTransposed) this.wdT.write(w);
    else {
      const [dim, h] = lw.wDown.shape;
      const t = this.wdT.f32();
      for (let r = 0; r < dim; r++) for (let c = 0; c < h; c++) t[c * dim + r] = w[r * h + c];
    }
    this.loaded = l;
  }

  /** Mean CETT of layer l when neurons with score ≤ eps are dropped. */
  mean(l: number, eps: number): number {
    if (eps === -Infinity) return 0;
    this.load(l);
    const negEps = nextF32Below(-eps);
    let sum = 0;
    for (let t = 0; t < this.samples; t++) {
      // dropped: s ≤ eps  ⇔  -s ≥ -eps  ⇔  -s > the next f32 below -eps
      const count = selectThreshold(this.idx, this.negScores[l].row(t), negEps);
      if (count === 0 || this.full[l][t] === 0) continue;
      gather(this.compact, this.a[l].row(t), this.idx, count);
      scatterAxpy(this.out, this.wdT, this.compact, this.idx, count);
      sum += norm(this.out.f32()) / this.full[l][t];
    }
    return sum / this.samples;
  }

  /** ε whose mean CETT over `layers` is closest to target: bisection over quantiles of the pooled scores (sorted). */
  fit(layers: number[], target: number, sorted: Float32Array): number {
    if (target <= 0) return -Infinity;
    const at = (q: number) => quantileOfSorted(sorted, q);
    const meanAt = (eps: number) => layers.reduce((s, l) => s + this.mean(l, eps), 0) / layers.length;
    let lo = 0;
    let hi = 1;
    for (let step = 0; step < BISECTION_STEPS; step++) {
      const mid = (lo + hi) / 2;
      if (meanAt(at(mid)) < target) lo = mid;
      else hi = mid;
    }
    const a = at(lo);
    const b = at(hi);
    return Math.abs(meanAt(a) - target) <= Math.abs(meanAt(b) - target) ? a : b;
  }
}

function norm(v: Float32Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** The largest f32 less than x (x finite). */
function nextF32Below(x: number): number {
  f32[0] = x;
  if (f32[0] === 0) return -(2 ** -149);
  u32[0] += f32[0] > 0 ? -1 : 1;
  return f32[0];
}
