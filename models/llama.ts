// The LLaMA forward pass for one token, read top to bottom as the math (after llama2.c's run.c):
//   x = embed(token)
//   per layer: x += Wo · attention(rope(Wq·norm(x)), cache(rope(Wk·norm(x)), Wv·norm(x)))
//              x += Wdown · (act(Wgate·norm(x)) ⊙ (Wup·norm(x)))
//   logits = Wout · norm(x)
// Swappable parts (the activation now; neuron gates, head gates and KV policies later) plug in as modules.
import type { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { add, relu } from "../engine/ops/elementwise";
import { embeddingRow } from "../engine/ops/embedding";
import { matmul } from "../engine/ops/matmul";
import { matvec } from "../engine/ops/matvec";
import { rmsnorm } from "../engine/ops/rmsnorm";
import { ACT_BLOCK_BYTES } from "../engine/dtype";
import { matrixValues } from "../engine/quant";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES, type Activation } from "./activation";
import { AttentionBlock, type AttentionStatsSummary, type HeadTracer } from "./attention";
import { BatchState, chunkTokens } from "./batch";
import { KV_POLICIES, type HeadGate, type KvPolicy } from "./gates/head-gate";
import type { TealHook } from "./teal";
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
  private readonly batch: BatchState;
  private readonly ropeTable: RopeTable;
  private ffn: FeedForward;
  private readonly attn: AttentionBlock;
  private teal: TealHook | null = null;
  private readonly downNormTensors: Tensor[];
  private downNormsReady = false;
  /**
   * Positions 0 … filled-1 hold this sequence's keys and values. A run may start at any of them or at `filled`
   * (rewinding is how evaluate scores each choice after a shared prefix), never past it: attention would read
   * another sequence's cache, or zeros, and return wrong logits without a word.
   */
  private filled = 0;

  constructor(
    readonly engine: Engine,
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly modules: LlamaModules = { activation: ACTIVATION_MODULES[config.activation] },
    private readonly bos?: number,
  ) {
    this.cache = new KVCache(engine, config);
    this.s = new RunState(engine, config);
    this.batch = new BatchState(engine, config);
    this.ropeTable = new RopeTable(engine, config.seqLen, headSize(config), config.ropeTheta, config.ropeScaling);
    this.ffn = new FeedForward(engine, config, modules.activation);
    this.attn = new AttentionBlock(engine, config, this.cache, this.ropeTable);
    this.downNormTensors = Array.from({ length: config.nLayers }, () => engine.tensor([config.hiddenDim]));
    engine.reserveScratch(LlamaModel.scratchBytes(config));
  }

  // Quantized weights need the activation quantized (ACT_BLOCK_BYTES per 32 values) once per product, a chunk's
  // rows at once in forwardBatch.
  private static scratchBytes(c: LlamaConfig): number {
    return chunkTokens(c) * Math.ceil(Math.max(c.dim, c.hiddenDim) / 32) * ACT_BLOCK_BYTES;
  }

  /** Engine bytes a model of this config needs besides its weights: KV cache, RoPE table, scratch. */
  static stateBytes(c: LlamaConfig): number {
    return KVCache.bytes(c) + RopeTable.bytes(c.seqLen, headSize(c)) + RunState.bytes(c) + FeedForward.bytes(c) +
      AttentionBlock.bytes(c) + BatchState.bytes(c) + LlamaModel.scratchBytes(c) + 64 +
      c.nLayers * (4 * c.hiddenDim + 64);
  }

  /**
   * The BOS id every window and prompt starts from: the tokenizer's (loadModel sets it from the tokenizer it loads;
   * LLaMA-3's is 128000, not 1). A model built without one (buildModel with no bosId) has none: asking is an error,
   * where a default of 1 silently scored other vocabularies after the wrong token.
   */
  get bosId(): number {
    if (this.bos === undefined) {
      throw new DynactError("this model has no BOS id: load it with loadModel (its tokenizer's) or build it with buildModel(checkpoint, { bosId })");
    }
    return this.bos;
  }

  /**
   * Stop the worker threads of a model loaded with threads > 1. Idle workers never keep the process alive, but each
   * holds the model's memory (and a thread) until stopped: a process that loads one model after another closes
   * each it is done with. The model still runs afterwards, on the calling thread.
   */
  close(): void {
    this.engine.close();
  }

  /** Swap the MLP's neuron gate and execution mode (same weights; statistics start afresh). */
  configureFfn(opts: FfnOptions): void {
    // Any other mode was taken, then ran the gather kernels on the wrong layout (a ShapeError about scatterAxpy).
    if (opts.mode !== "mask" && opts.mode !== "gather") throw new DynactError(`FFN mode must be mask or gather, got ${JSON.stringify(opts.mode)}`);
    if (opts.gate && opts.mode === "gather" && !this.weights.layers[0].downTransposed) {
      throw new DynactError("gather mode needs W_down stored transposed: load the model with transposeDown");
    }
    if (opts.gate && this.weights.layers[0].inputsTransposed) {
      throw new DynactError("neuron gates need W_gate/W_up row-major: a model loaded for TEAL's gather mode runs no neuron gate");
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

  /** TEAL input sparsity (or a recorder for its calibration); null: off. */
  configureTeal(hook: TealHook | null): void {
    this.teal = hook;
    this.attn.teal = hook;
    this.ffn.teal = hook;
  }

  /** Observe each layer's block input and per-head contribution norms on the dense attention path; null to stop. */
  traceHeads(tracer: HeadTracer | null): void {
    this.attn.tracer = tracer;
  }

  /** Swap the head gate and KV policy (same weights; statistics start afresh). */
  configureHeads(gate: HeadGate | null, policy: KvPolicy): void {
    if (!KV_POLICIES.includes(policy)) throw new DynactError(`KV policy must be one of ${KV_POLICIES.join(", ")}, got ${JSON.stringify(policy)}`);
    if (gate && this.weights.layers[0].inputsTransposed) {
      throw new DynactError("head gates need W_q/W_k/W_v row-major: they cannot run with TEAL's gather mode");
    }
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

  /**
   * Run `token` at position `pos` (0-based; positions < pos must have been run, else a DynactError) and return the
   * logits: a view of the model's scratch that the next call overwrites (read() copies it).
   */
  forward(token: number, pos: number): Tensor {
    const { config: c, weights: w, s } = this;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) {
      throw new DynactError(`token ${token} outside the vocabulary of ${c.vocabSize}`);
    }
    if (!Number.isInteger(pos) || pos < 0 || pos >= c.seqLen) {
      throw new DynactError(`position ${pos} outside the context of ${c.seqLen}`);
    }
    this.checkStart(pos);
    embeddingRow(s.x, w.tokenEmbedding, token);
    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      rmsnorm(s.xb, s.x, lw.attnNorm, c.normEps);
      if (c.reluAfterNorm) relu(s.xb, s.xb);
      this.teal?.apply(l, 0, s.xb);
      this.attn.run(l, lw, s.xb, s.xb2, pos);
      add(s.x, s.x, s.xb2);
      rmsnorm(s.xb, s.x, lw.ffnNorm, c.normEps);
      if (c.reluAfterNorm) relu(s.xb, s.xb);
      this.teal?.apply(l, 2, s.xb);
      this.ffn.run(l, lw, s.xb, s.xb2);
      add(s.x, s.x, s.xb2);
    }
    rmsnorm(s.x, s.x, w.finalNorm, c.normEps);
    matvec(s.logits, w.output, s.x);
    this.filled = pos + 1;
    return s.logits;
  }

  private checkStart(pos: number): void {
    if (pos > this.filled) {
      throw new DynactError(`position ${pos} skips positions ${this.filled}…${pos - 1}: run those first (a sequence starts at 0)`);
    }
  }

  /** Most tokens forwardBatch takes per call (its scratch is sized for this many at model build). */
  get chunkSize(): number {
    return this.batch.tokens;
  }

  /**
   * True when forwardBatch runs a chunk at once: the dense model in the standard weight layout. Gates (neuron,
   * head, prompt-based, TEAL) and tracers decide per token, and transposed W_down/W_o change the products'
   * summation order, so then forwardBatch runs forward() token by token.
   */
  get batched(): boolean {
    const lw = this.weights.layers[0];
    return !this.ffn.gate && !this.ffn.tracer && this.attn.dense && !this.teal && !lw.downTransposed && !lw.woTransposed;
  }

  /**
   * Run tokens at positions startPos, startPos+1, … (positions < startPos must have been run, else a DynactError;
   * at most chunkSize tokens) and return the logits of every position, [T, vocab], or with `logits: "last"` of the
   * last, [1, vocab].
   * Each position's logits are forward()'s bit for bit: GEMMs instead of GEMVs (same per-row reduction), RMSNorm
   * and RoPE per row, causal attention per position. The result is a view of scratch that the next call overwrites.
   */
  forwardBatch(tokens: readonly number[], startPos: number, opts: { logits?: "all" | "last" } = {}): Tensor {
    const { config: c, weights: w, batch: b, s } = this;
    const T = tokens.length;
    if (T < 1 || T > b.tokens) throw new DynactError(`forwardBatch takes 1 to ${b.tokens} tokens, got ${T}`);
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + T > c.seqLen) {
      throw new DynactError(`positions ${startPos}…${startPos + T - 1} outside the context of ${c.seqLen}`);
    }
    this.checkStart(startPos);
    const last = opts.logits === "last";
    if (!this.batched) {
      tokens.forEach((id, t) => {
        const logits = this.forward(id, startPos + t);
        if (!last) b.logits.row(t).copyFrom(logits);
      });
      return last ? s.logits.reshape([1, c.vocabSize]) : b.logits.rows(0, T);
    }
    for (const id of tokens) {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new DynactError(`token ${id} outside the vocabulary of ${c.vocabSize}`);
      }
    }
    const [x, xb, xb2] = [b.x.rows(0, T), b.xb.rows(0, T), b.xb2.rows(0, T)];
    tokens.forEach((id, t) => embeddingRow(x.row(t), w.tokenEmbedding, id));
    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      rmsnorm(xb, x, lw.attnNorm, c.normEps);
      if (c.reluAfterNorm) relu(xb, xb);
      this.attn.runBatch(l, lw, xb, xb2, b.q.rows(0, T), b.o.rows(0, T), startPos);
      add(x, x, xb2);
      rmsnorm(xb, x, lw.ffnNorm, c.normEps);
      if (c.reluAfterNorm) relu(xb, xb);
      this.ffn.runBatch(l, lw, xb, xb2, b.hb.rows(0, T), b.hb2.rows(0, T));
      add(x, x, xb2);
    }
    this.filled = startPos + T;
    if (last) {
      rmsnorm(s.x, x.row(T - 1), w.finalNorm, c.normEps);
      matvec(s.logits, w.output, s.x);
      return s.logits.reshape([1, c.vocabSize]);
    }
    rmsnorm(x, x, w.finalNorm, c.normEps);
    const logits = b.logits.rows(0, T);
    matmul(logits, w.output, x);
    return logits;
  }

  /** Run tokens from startPos in chunks (the prompt of a generation, a shared context); the last logits, [1, vocab]. */
  prefill(tokens: readonly number[], startPos = 0): Tensor {
    if (tokens.length === 0) throw new DynactError("prefill of no tokens");
    let logits = this.s.logits;
    for (let i = 0; i < tokens.length; i += this.chunkSize) {
      logits = this.forwardBatch(tokens.slice(i, i + this.chunkSize), startPos + i, { logits: "last" });
    }
    return logits;
  }
}

/** L2 norm of each neuron's output weights: columns of W_down [dim, hidden], or rows of its transpose. */
function columnNorms(wDown: Tensor, transposed: boolean): Float32Array {
  const w = matrixValues(wDown);
  const [rows, cols] = wDown.shape;
  const hidden = transposed ? rows : cols;
  const out = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[transposed ? r : c] += w[r * cols + c] ** 2;
  }
  return Float32Array.from(out, Math.sqrt);
}

