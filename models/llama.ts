// The LLaMA forward pass for one token, read top to bottom as the math (after llama2.c's run.c):
//   x = embed(token)
//   per layer: x += Wo · attention(rope(Wq·norm(x)), cache(rope(Wk·norm(x)), Wv·norm(x)))
//              x += Wdown · (act(Wgate·norm(x)) ⊙ (Wup·norm(x)))
//   logits = Wout · norm(x)
// Swappable parts (the activation now; neuron gates, head gates and KV policies later) plug in as modules.
import type { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { add } from "../engine/ops/elementwise";
import { embeddingRow } from "../engine/ops/embedding";
import { matvec } from "../engine/ops/matvec";
import { rmsnorm } from "../engine/ops/rmsnorm";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES, type Activation } from "./activation";
import { AttentionBlock, type AttentionStatsSummary } from "./attention";
import type { HeadGate, KvPolicy } from "./gates/head-gate";
import { FeedForward, type FfnMode, type FfnTracer } from "./ffn";
import type { NeuronGate } from "./gates/neuron-gate";
import { headSize, type LlamaConfig } from "./config";
import { KVCache } from "./kv-cache";
import { RopeTable } from "./rope";
import type { LlamaWeights } from "./weights";

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
  readonly xb: Tensor; // normalised input of a sublayer
  readonly xb2: Tensor; // sublayer output before the residual add
  readonly logits: Tensor;

  constructor(engine: Engine, c: LlamaConfig) {
    this.x = engine.tensor([c.dim]);
    this.xb = engine.tensor([c.dim]);
    this.xb2 = engine.tensor([c.dim]);
    this.logits = engine.tensor([c.vocabSize]);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * (3 * c.dim + c.vocabSize) + 4 * 64;
  }
}

export class LlamaModel {
  readonly cache: KVCache;
  private readonly s: RunState;
  private readonly ropeTable: RopeTable;
  private ffn: FeedForward;
  private readonly attn: AttentionBlock;
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
    this.attn = new AttentionBlock(engine, config, this.cache, this.ropeTable);
    this.downNormTensors = Array.from({ length: config.nLayers }, () => engine.tensor([config.hiddenDim]));
    engine.reserveScratch(LlamaModel.scratchBytes(config));
  }

  // Quantized weights need the activation quantized to Q8_0 blocks (34 bytes per 32 values) once per product.
  private static scratchBytes(c: LlamaConfig): number {
    return Math.ceil(Math.max(c.dim, c.hiddenDim) / 32) * 34;
  }

  /** Engine bytes a model of this config needs besides its weights: KV cache, RoPE table, scratch. */
  static stateBytes(c: LlamaConfig): number {
    return KVCache.bytes(c) + RopeTable.bytes(c.seqLen, headSize(c)) + RunState.bytes(c) + FeedForward.bytes(c) +
      AttentionBlock.bytes(c) + LlamaModel.scratchBytes(c) + 64 +
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

  /** Swap the head gate and KV policy (same weights; statistics start afresh). */
  configureHeads(gate: HeadGate | null, policy: KvPolicy): void {
    this.attn.configure(gate, policy, this.weights.layers[0].woTransposed);
  }

  get attentionStats(): AttentionStatsSummary {
    return this.attn.summary();
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
    embeddingRow(s.x, w.tokenEmbedding, token);
    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      rmsnorm(s.xb, s.x, lw.attnNorm, c.normEps);
      this.attn.run(l, lw, s.xb, s.xb2, pos);
      add(s.x, s.x, s.xb2);
      rmsnorm(s.xb, s.x, lw.ffnNorm, c.normEps);
      this.ffn.run(l, lw, s.xb, s.xb2);
      add(s.x, s.x, s.xb2);
    }
    rmsnorm(s.x, s.x, w.finalNorm, c.normEps);
    matvec(s.logits, w.output, s.x);
    return s.logits;
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

