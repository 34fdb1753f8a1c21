// The LLaMA forward pass for one token, read top to bottom as the math (after llama2.c's run.c):
//   x = embed(token)
//   per layer: x += Wo · attention(rope(Wq·norm(x)), cache(rope(Wk·norm(x)), Wv·norm(x)))
//              x += Wdown · (act(Wgate·norm(x)) ⊙ (Wup·norm(x)))
//   logits = Wout · norm(x)
// Swappable parts (the activation now; neuron gates, head gates and KV policies later) plug in as modules.
import type { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { add } from "../engine/ops/elementwise";
import { attention } from "../engine/ops/attention";
import { matvec } from "../engine/ops/matvec";
import { rmsnorm } from "../engine/ops/rmsnorm";
import { rope } from "../engine/ops/rope";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES, type Activation } from "./activation";
import { FeedForward, type FfnMode, type FfnTracer } from "./ffn";
import type { NeuronGate } from "./gates/neuron-gate";
import { headSize, type LlamaConfig } from "./config";
import { KVCache } from "./kv-cache";
import { RopeTable } from "./rope";
import type { LayerWeights, LlamaWeights } from "./weights";

export interface LlamaModules {
  activation: Activation;
}

export interface FfnOptions {
  /** null: dense MLP. */
  gate: NeuronGate | null;
  mode: FfnMode;
  /** Measure achieved CETT per layer and token (mask mode). */
  measureCett?: boolean;
}

/** Scratch activations for one token. */
class RunState {
  readonly x: Tensor; // residual stream
  readonly xb: Tensor; // normalised input of a sublayer, then attention output
  readonly xb2: Tensor; // sublayer output before the residual add
  readonly q: Tensor;
  readonly att: Tensor; // attention scores [nHeads, seqLen]
  readonly logits: Tensor;

  constructor(engine: Engine, c: LlamaConfig) {
    this.x = engine.tensor([c.dim]);
    this.xb = engine.tensor([c.dim]);
    this.xb2 = engine.tensor([c.dim]);
    this.q = engine.tensor([c.dim]);
    this.att = engine.tensor([c.nHeads, c.seqLen]);
    this.logits = engine.tensor([c.vocabSize]);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * (4 * c.dim + c.nHeads * c.seqLen + c.vocabSize) + 6 * 64;
  }
}

export class LlamaModel {
  readonly cache: KVCache;
  private readonly s: RunState;
  private readonly ropeTable: RopeTable;
  private ffn: FeedForward;
  private readonly downNormTensors: Tensor[];
  private downNormsReady = false;

  constructor(
    readonly engine: Engine,
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly modules: LlamaModules = { activation: ACTIVATION_MODULES[config.activation] },
  ) {
    this.cache = new KVCache(engine, config);
    this.s = new RunState(engine, config);
    this.ropeTable = new RopeTable(engine, config.seqLen, headSize(config), config.ropeTheta, config.ropeScaling);
    this.ffn = new FeedForward(engine, config, modules.activation);
    this.downNormTensors = Array.from({ length: config.nLayers }, () => engine.tensor([config.hiddenDim]));
  }

  /** Engine bytes a model of this config needs besides its weights: KV cache, RoPE table, scratch. */
  static stateBytes(c: LlamaConfig): number {
    return KVCache.bytes(c) + RopeTable.bytes(c.seqLen, headSize(c)) + RunState.bytes(c) + FeedForward.bytes(c) +
      c.nLayers * (4 * c.hiddenDim + 64);
  }

  /** Swap the MLP's neuron gate and execution mode (same weights; statistics start afresh). */
  configureFfn(opts: FfnOptions): void {
    if (opts.gate && opts.mode === "gather" && !this.weights.layers[0].downTransposed) {
      throw new DynactError("gather mode needs W_down stored transposed: load the model with transposeDown");
    }
    this.ffn.configure(opts.gate, opts.mode, opts.measureCett ?? false);
  }

  /** A new sequence starts at position 0 (prompt-based gates forget the last prompt). */
  beginSequence(): void {
    this.ffn.gate?.beginSequence?.();
  }

  /** The prompt has been run; what follows is generated. */
  beginGeneration(): void {
    this.ffn.gate?.beginGeneration?.();
  }

  /** True when the neuron gate chooses its neurons from a prompt (it needs beginGeneration). */
  get usesPromptGate(): boolean {
    return this.ffn.gate?.beginGeneration !== undefined;
  }

  get ffnGateSpec(): string {
    return this.ffn.gate?.spec ?? "dense";
  }

  get ffnStats() {
    return this.ffn.stats;
  }

  /** Observe act(W_gate x) and W_up x of every layer on the dense path; null to stop. */
  traceFfn(tracer: FfnTracer | null): void {
    this.ffn.tracer = tracer;
  }

  /** ‖W_down[:, i]‖ for every neuron of every layer (computed once, on first use). */
  downNorms(): Tensor[] {
    if (!this.downNormsReady) {
      this.weights.layers.forEach((lw, l) => this.downNormTensors[l].write(columnNorms(lw.wDown, lw.downTransposed)));
      this.downNormsReady = true;
    }
    return this.downNormTensors;
  }

  /** Run `token` at position `pos` (0-based; positions < pos must have been run) and return the logits. */
  forward(token: number, pos: number): Tensor {
    const { config: c, weights: w, s } = this;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) {
      throw new DynactError(`token ${token} outside the vocabulary of ${c.vocabSize}`);
    }
    if (!Number.isInteger(pos) || pos < 0 || pos >= c.seqLen) {
      throw new DynactError(`position ${pos} outside the context of ${c.seqLen}`);
    }
    s.x.copyFrom(w.tokenEmbedding.row(token));
    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      rmsnorm(s.xb, s.x, lw.attnNorm, c.normEps);
      this.attentionBlock(l, lw, pos);
      add(s.x, s.x, s.xb2);
      rmsnorm(s.xb, s.x, lw.ffnNorm, c.normEps);
      this.ffn.run(l, lw, s.xb, s.xb2);
      add(s.x, s.x, s.xb2);
    }
    rmsnorm(s.x, s.x, w.finalNorm, c.normEps);
    matvec(s.logits, w.output, s.x);
    return s.logits;
  }

  /** xb2 = Wo · attention over the cache, after writing this position's K and V; reads xb. */
  private attentionBlock(l: number, lw: LayerWeights, pos: number): void {
    const { config: c, s } = this;
    const hs = headSize(c);
    const k = this.cache.keys[l].row(pos);
    const v = this.cache.values[l].row(pos);
    matvec(s.q, lw.wq, s.xb);
    matvec(k, lw.wk, s.xb);
    matvec(v, lw.wv, s.xb);
    const cos = this.ropeTable.cos.row(pos);
    const sin = this.ropeTable.sin.row(pos);
    rope(s.q, hs, cos, sin);
    rope(k, hs, cos, sin);
    attention(s.xb, s.q, this.cache.keys[l], this.cache.values[l], s.att,
      { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs }, pos + 1);
    matvec(s.xb2, lw.wo, s.xb);
  }

}

/** L2 norm of each neuron's output weights: columns of W_down [dim, hidden], or rows of its transpose. */
function columnNorms(wDown: Tensor, transposed: boolean): Float32Array {
  const w = wDown.f32();
  const [rows, cols] = wDown.shape;
  const hidden = transposed ? rows : cols;
  const out = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[transposed ? r : c] += w[r * cols + c] ** 2;
  }
  return Float32Array.from(out, Math.sqrt);
}

