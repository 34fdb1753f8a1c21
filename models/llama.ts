// The LLaMA forward pass for one token, read top to bottom as the math (after llama2.c's run.c):
//   x = embed(token)
//   per layer: x += Wo · attention(rope(Wq·norm(x)), cache(rope(Wk·norm(x)), Wv·norm(x)))
//              x += Wdown · (act(Wgate·norm(x)) ⊙ (Wup·norm(x)))
//   logits = Wout · norm(x)
// Swappable parts (the activation now; neuron gates, head gates and KV policies later) plug in as modules.
import type { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { add, mul } from "../engine/ops/elementwise";
import { attention } from "../engine/ops/attention";
import { matvec } from "../engine/ops/matvec";
import { rmsnorm } from "../engine/ops/rmsnorm";
import { rope } from "../engine/ops/rope";
import type { Tensor } from "../engine/tensor";
import { ACTIVATION_MODULES, type Activation } from "./activation";
import { headSize, type LlamaConfig } from "./config";
import { KVCache } from "./kv-cache";
import { RopeTable } from "./rope";
import type { LayerWeights, LlamaWeights } from "./weights";

export interface LlamaModules {
  activation: Activation;
}

/** Scratch activations for one token. */
class RunState {
  readonly x: Tensor; // residual stream
  readonly xb: Tensor; // normalised input of a sublayer, then attention output
  readonly xb2: Tensor; // sublayer output before the residual add
  readonly q: Tensor;
  readonly hb: Tensor; // gate branch of the MLP
  readonly hb2: Tensor; // up branch of the MLP
  readonly att: Tensor; // attention scores [nHeads, seqLen]
  readonly logits: Tensor;

  constructor(engine: Engine, c: LlamaConfig) {
    this.x = engine.tensor([c.dim]);
    this.xb = engine.tensor([c.dim]);
    this.xb2 = engine.tensor([c.dim]);
    this.q = engine.tensor([c.dim]);
    this.hb = engine.tensor([c.hiddenDim]);
    this.hb2 = engine.tensor([c.hiddenDim]);
    this.att = engine.tensor([c.nHeads, c.seqLen]);
    this.logits = engine.tensor([c.vocabSize]);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * (4 * c.dim + 2 * c.hiddenDim + c.nHeads * c.seqLen + c.vocabSize) + 8 * 64;
  }
}

export class LlamaModel {
  readonly cache: KVCache;
  private readonly s: RunState;
  private readonly ropeTable: RopeTable;

  constructor(
    readonly engine: Engine,
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly modules: LlamaModules = { activation: ACTIVATION_MODULES[config.activation] },
  ) {
    this.cache = new KVCache(engine, config);
    this.s = new RunState(engine, config);
    this.ropeTable = new RopeTable(engine, config.seqLen, headSize(config), config.ropeTheta);
  }

  /** Engine bytes a model of this config needs besides its weights: KV cache, RoPE table, scratch. */
  static stateBytes(c: LlamaConfig): number {
    return KVCache.bytes(c) + RopeTable.bytes(c.seqLen, headSize(c)) + RunState.bytes(c);
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
      this.feedForward(lw);
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

  /** xb2 = Wdown · (act(Wgate · xb) ⊙ (Wup · xb)). */
  private feedForward(lw: LayerWeights): void {
    const s = this.s;
    matvec(s.hb, lw.wGate, s.xb);
    matvec(s.hb2, lw.wUp, s.xb);
    this.modules.activation.apply(s.hb, s.hb);
    mul(s.hb, s.hb, s.hb2);
    matvec(s.xb2, lw.wDown, s.hb);
  }
}

