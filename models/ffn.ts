// The MLP block with dynamic activation: xb2 = W_down · (act(W_gate x) ⊙ (W_up x)), restricted to the neurons a
// gate keeps. Three ways to run it:
//   dense   no gate
//   mask    compute everything, zero the neurons outside S (the accuracy reference; measures achieved CETT)
//   gather  compute only S: gate/up as row-gather products, down as a column scatter over W_downᵀ
// A gate that keeps every neuron runs the dense path, so gather and mask equal dense bit for bit there.
import type { Engine } from "../engine/engine";
import { mul } from "../engine/ops/elementwise";
import { matmul } from "../engine/ops/matmul";
import { matvec } from "../engine/ops/matvec";
import { gather, matvecColumns, matvecRows, scatter, scatterAxpy } from "../engine/ops/sparse";
import type { Tensor } from "../engine/tensor";
import type { Activation } from "./activation";
import type { LlamaConfig } from "./config";
import { FfnStats } from "./ffn-stats";
import type { GateScratch, NeuronGate } from "./gates/neuron-gate";
import type { TealHook } from "./teal";
import type { LayerWeights } from "./weights";

export type FfnMode = "mask" | "gather";

/** Sees each layer's act(W_gate x), W_up x and the input x on the dense path (calibration, activation traces). */
export type FfnTracer = (l: number, actGate: Tensor, up: Tensor, x: Tensor) => void;

export class FeedForward {
  stats: FfnStats;
  private readonly g: Tensor; // act(W_gate x), full
  private readonly u: Tensor; // W_up x (full or compact)
  private readonly c: Tensor; // compact scratch
  private readonly y: Tensor; // dense down product, for CETT
  private readonly all: Tensor; // 0..hidden-1, for a dense down product over W_downᵀ
  // TEAL column gather (inputs stored transposed): the nonzero entries of a product's input.
  private readonly colIdx: Tensor;
  private readonly colVals: Tensor;
  private readonly scratch: GateScratch;

  gate: NeuronGate | null = null;
  private mode: FfnMode = "mask";
  /** Measure achieved CETT (mask mode): one more down product per layer and token. */
  private measureCett = false;
  tracer: FfnTracer | null = null;
  /** TEAL: sparsifies the down product's input (point 3). */
  teal: TealHook | null = null;

  constructor(
    engine: Engine,
    private readonly config: LlamaConfig,
    private readonly activation: Activation,
  ) {
    const h = config.hiddenDim;
    this.g = engine.tensor([h]);
    this.u = engine.tensor([h]);
    this.c = engine.tensor([h]);
    this.y = engine.tensor([config.dim]);
    this.all = engine.tensor([h], "i32");
    this.all.i32().forEach((_, i, a) => (a[i] = i));
    this.scratch = { idx: engine.tensor([h], "i32"), scores: engine.tensor([h]), work: engine.tensor([h]) };
    this.colIdx = engine.tensor([Math.max(h, config.dim)], "i32");
    this.colVals = engine.tensor([Math.max(h, config.dim)]);
    this.stats = new FfnStats(config.nLayers);
  }

  configure(gate: NeuronGate | null, mode: FfnMode, measureCett: boolean): void {
    this.gate = gate;
    this.mode = mode;
    this.measureCett = measureCett;
    this.stats = new FfnStats(this.config.nLayers);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * (7 * c.hiddenDim + c.dim + 2 * Math.max(c.hiddenDim, c.dim)) + 10 * 64;
  }

  /** out = FFN(x) for layer l. */
  run(l: number, lw: LayerWeights, x: Tensor, out: Tensor): void {
    const { g, u, c, config } = this;
    const h = config.hiddenDim;
    const denseMacs = 3 * config.dim * h;
    const gate = this.gate;
    if (!gate) {
      this.dense(l, lw, x, out);
      this.stats.record(l, 1, denseMacs, denseMacs, null);
      return;
    }
    const needGate = gate.chooses === "gate";
    if (needGate || this.mode === "mask") {
      matvec(g, lw.wGate, x);
      this.activation.apply(g, g);
    }
    const count = gate.select(l, x, needGate ? g : null, this.scratch);
    const gateMacs = gate.selectMacs ?? 0;
    const idx = this.scratch.idx;
    if (count === h) {
      if (needGate || this.mode === "mask") this.denseFromGate(l, lw, x, out);
      else this.dense(l, lw, x, out);
      this.stats.record(l, 1, denseMacs, denseMacs, this.measureCett && this.mode === "mask" ? 0 : null, gateMacs);
      return;
    }
    if (this.mode === "mask") {
      matvec(u, lw.wUp, x);
      this.scoreChoice(l, count);
      mul(g, g, u); // g now holds the full activation a
      let cett: number | null = null;
      if (this.measureCett) this.down(lw, g, this.y);
      gather(c, g, idx, count);
      g.f32().fill(0);
      scatter(g, c, idx, count);
      this.teal?.apply(l, 3, g);
      this.down(lw, g, out);
      if (this.measureCett) cett = relativeError(this.y, out);
      this.stats.record(l, count / h, denseMacs, denseMacs, cett, gateMacs);
      return;
    }
    // gather: compact vectors over S
    const gc = c.prefix(count);
    const uc = u.prefix(count);
    if (needGate) {
      gather(gc, g, idx, count);
    } else {
      matvecRows(gc, lw.wGate, x, idx, count);
      this.activation.apply(gc, gc);
    }
    matvecRows(uc, lw.wUp, x, idx, count);
    mul(gc, gc, uc);
    this.teal?.apply(l, 3, gc);
    scatterAxpy(out, lw.wDown, gc, idx, count);
    const macs = (needGate ? config.dim * h : config.dim * count) + 2 * config.dim * count;
    this.stats.record(l, count / h, macs, denseMacs, null, gateMacs);
  }

  private dense(l: number, lw: LayerWeights, x: Tensor, out: Tensor): void {
    this.inputProduct(this.g, lw.wGate, x, lw);
    this.activation.apply(this.g, this.g);
    this.denseFromGate(l, lw, x, out);
  }

  /**
   * The dense path (no gate, no tracer, W_down not transposed: the caller checks) for the T rows of a chunk at
   * once: x, out [T, dim]; g, u [T, hidden] scratch. GEMMs whose rows are the bits of dense()'s GEMVs.
   */
  runBatch(l: number, lw: LayerWeights, x: Tensor, out: Tensor, g: Tensor, u: Tensor): void {
    matmul(g, lw.wGate, x);
    this.activation.apply(g, g);
    matmul(u, lw.wUp, x);
    mul(g, g, u);
    matmul(out, lw.wDown, g);
    const denseMacs = 3 * this.config.dim * this.config.hiddenDim;
    for (let t = 0; t < x.shape[0]; t++) this.stats.record(l, 1, denseMacs, denseMacs, null);
  }

  /** The rest of the dense path once g = act(W_gate x). */
  private denseFromGate(l: number, lw: LayerWeights, x: Tensor, out: Tensor): void {
    this.inputProduct(this.u, lw.wUp, x, lw);
    this.tracer?.(l, this.g, this.u, x);
    if (this.mode === "mask") this.scoreChoice(l, this.config.hiddenDim);
    mul(this.g, this.g, this.u);
    this.gate?.observe?.(l, this.g);
    this.teal?.apply(l, 3, this.g);
    this.down(lw, this.g, out);
  }

  /** Mask mode, g = act(W_gate x), u = W_up x: score the gate's S (idx[0, count), or all) against its oracle. */
  private scoreChoice(l: number, count: number): void {
    const oracle = this.gate?.oracle?.(l, this.g, this.u);
    if (!oracle) return;
    const h = this.config.hiddenDim;
    let inOracle = 0;
    for (let i = 0; i < h; i++) inOracle += oracle[i];
    let hits = inOracle;
    if (count < h) {
      const idx = this.scratch.idx.i32();
      hits = 0;
      for (let k = 0; k < count; k++) hits += oracle[idx[k]];
    }
    this.stats.recordOracle(l, h, count, inOracle, hits);
  }

  /** out = W · x for gate/up: a matvec, or with the inputs stored transposed (TEAL gather) a column gather. */
  private inputProduct(out: Tensor, w: Tensor, x: Tensor, lw: LayerWeights): void {
    if (lw.inputsTransposed) matvecColumns(out, w, x, this.colIdx, this.colVals);
    else matvec(out, w, x);
  }

  /** out = W_down · a, whichever layout W_down is stored in (TEAL gather: over a's nonzero entries only). */
  private down(lw: LayerWeights, a: Tensor, out: Tensor): void {
    if (lw.inputsTransposed) matvecColumns(out, lw.wDown, a, this.colIdx, this.colVals);
    else if (lw.downTransposed) scatterAxpy(out, lw.wDown, a, this.all, this.config.hiddenDim);
    else matvec(out, lw.wDown, a);
  }
}

/** ‖ref - approx‖ / ‖ref‖: the error of dropping neurons, relative to the full output. */
function relativeError(ref: Tensor, approx: Tensor): number {
  const a = ref.f32();
  const b = approx.f32();
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : 0;
}
