// The LLaMA of models/llama.ts as a training graph over a batch of B sequences of T positions: forward keeps
// the activations the backward pass needs, backward accumulates every parameter's gradient (llm.c style: one
// hand-written backward per op, called in reverse order; no tape).
//   x = embed(tokens)
//   per layer: x += Wo · attention(rope(Wq·n1), rope(Wk·n1), Wv·n1),  n1 = [relu] norm(x)
//              x += Wdown · (act(Wgate·n2) ⊙ Wup·n2),                   n2 = [relu] norm(x)
//   loss = mean CE(Wout · norm(x)) + mean over layers l of λ_l · mean |act(Wgate·n2)|  (over positions, neurons)
// (with a teacher, forwardDistill: the mean CE becomes the mean of distill.ts's mix of CE and KL to the teacher).
import { headSize, kvDim, type LlamaConfig } from "../config";
import { ropeAngles } from "../rope";
import type { TrainActivation } from "./activation";
import { activationForward, reluBackwardInPlace } from "./activation";
import type { AttentionShape } from "./attention";
import { crossEntropyBackward, crossEntropyForward } from "./cross-entropy";
import { distillForward } from "./distill";
import { embeddingBackward, embeddingForward } from "./embedding";
import type { Floats } from "./floats";
import { absSum, gatedBackward, gatedForward } from "./gated-mlp";
import type { TrainOps } from "./ops";
import type { Params } from "./params";
import { rmsnormBackward, rmsnormForward } from "./rmsnorm";
import { ropeBackward, ropeForward, type RopeAngles } from "./rope";

/** What one layer's forward pass keeps for its backward pass. */
interface LayerActs {
  x1: Floats; // residual stream entering the layer
  rstd1: Floats;
  n1: Floats; // attention input (after stage 2's ReLU)
  q: Floats; // rotated
  k: Floats; // rotated
  v: Floats;
  o: Floats; // attention output before Wo
  lse: Floats;
  x2: Floats; // residual stream entering the MLP
  rstd2: Floats;
  n2: Floats;
  g: Floats; // Wgate · n2
  u: Floats; // Wup · n2
  a: Floats; // act(g)
  h: Floats; // a ⊙ u
}

/** Every buffer the model allocates, for batches of up to maxB × maxT positions. */
function bufferPlan(c: LlamaConfig, maxB: number, maxT: number) {
  const N = maxB * maxT, D = c.dim, KV = kvDim(c), Hd = c.hiddenDim;
  const layer: Record<keyof LayerActs, number> = {
    x1: N * D, rstd1: N, n1: N * D, q: N * D, k: N * KV, v: N * KV, o: N * D, lse: N * c.nHeads,
    x2: N * D, rstd2: N, n2: N * D, g: N * Hd, u: N * Hd, a: N * Hd, h: N * Hd,
  };
  return {
    layer, xf: N * D, rstdf: N, nf: N * D, logits: N * c.vocabSize,
    dx: N * D, dn: N * D, dq: N * D, dk: N * KV, dv: N * KV, dO: N * D, dg: N * Hd, du: N * Hd, dh: N * Hd,
  };
}

export interface ForwardStats {
  /** Mean cross-entropy over the batch's positions (nats). */
  loss: number;
  /** Per layer: mean |act(W_gate x)| over positions and neurons (the L1 penalty before λ). */
  actAbsMean: number[];
  /** Per layer: fraction of act(W_gate x) that is exactly 0. */
  zeroFraction: number[];
  /** forwardDistill only: mean τ²·KL(teacher ‖ student) over the batch's positions (nats). */
  kl?: number;
}

export class TrainModel {
  readonly activation: TrainActivation;
  private readonly layers: LayerActs[];
  private readonly xf: Floats; // residual stream after the last layer
  private readonly rstdf: Floats;
  private readonly nf: Floats;
  private readonly logitsBuf: Floats;
  private readonly losses: Float64Array;
  // Gradient scratch, shared by the layers as the backward pass walks down.
  private readonly dx: Floats;
  private readonly dn: Floats;
  private readonly dq: Floats;
  private readonly dk: Floats;
  private readonly dv: Floats;
  private readonly dO: Floats;
  private readonly dg: Floats;
  private readonly du: Floats;
  private readonly dh: Floats;
  private readonly rope: RopeAngles;
  private readonly ops: TrainOps;
  private tokens: Int32Array = new Int32Array(0);
  private targets: Int32Array = new Int32Array(0);
  /** The last forward was forwardDistill: logitsBuf holds (1/N)·d loss_n / d logits_n, not probabilities. */
  private distilled = false;
  private B = 0;
  private T = 0;

  /** Room for batches of up to `maxB` sequences of up to `maxT` positions; buffers come from params.ops. */
  constructor(readonly params: Params, readonly maxB: number, readonly maxT: number) {
    const c = params.config;
    if (c.activation !== "silu" && c.activation !== "relu") throw new Error(`training supports silu and relu MLPs, not ${c.activation}`);
    if (maxT > c.seqLen) throw new Error(`sequence length ${maxT} exceeds the model's context ${c.seqLen}`);
    this.activation = c.activation;
    this.ops = params.ops;
    const alloc = (n: number) => this.ops.alloc(n);
    const plan = bufferPlan(c, maxB, maxT);
    this.layers = Array.from({ length: c.nLayers }, () =>
      Object.fromEntries(Object.entries(plan.layer).map(([k, n]) => [k, alloc(n)])) as unknown as LayerActs);
    this.xf = alloc(plan.xf);
    this.rstdf = alloc(plan.rstdf);
    this.nf = alloc(plan.nf);
    this.logitsBuf = alloc(plan.logits);
    this.dx = alloc(plan.dx);
    this.dn = alloc(plan.dn);
    this.dq = alloc(plan.dq);
    this.dk = alloc(plan.dk);
    this.dv = alloc(plan.dv);
    this.dO = alloc(plan.dO);
    this.dg = alloc(plan.dg);
    this.du = alloc(plan.du);
    this.dh = alloc(plan.dh);
    this.losses = new Float64Array(maxB * maxT);
    this.rope = ropeAngles(maxT, headSize(c), c.ropeTheta, c.ropeScaling);
  }

  /** Sizes of the buffers a TrainModel allocates. */
  static bufferSizes(c: LlamaConfig, maxB: number, maxT: number): number[] {
    const { layer, ...rest } = bufferPlan(c, maxB, maxT);
    return [...Array.from({ length: c.nLayers }, () => Object.values(layer)).flat(), ...Object.values(rest)];
  }

  get config(): LlamaConfig {
    return this.params.config;
  }

  /** Logits [B·T, V] of B sequences of T tokens (a view, valid until the next forward). */
  logits(tokens: Int32Array, B: number, T: number): Floats {
    this.run(tokens, B, T);
    return this.logitsBuf.subarray(0, B * T * this.config.vocabSize);
  }

  /** Forward pass with next-token targets; prepares backward(). */
  forward(tokens: Int32Array, targets: Int32Array, B: number, T: number): ForwardStats {
    const stats = this.run(tokens, B, T);
    const N = B * T;
    this.targets = targets;
    this.distilled = false;
    const sum = crossEntropyForward(this.logitsBuf, this.losses, targets, N, this.config.vocabSize);
    return { ...stats, loss: sum / N };
  }

  /**
   * Forward pass whose loss is distill.ts's (1 − α)·CE + α·τ²·KL against the teacher's logits [B·T, V] for the
   * same tokens; prepares backward(). `loss` is still the mean CE alone, `kl` the mean τ²·KL.
   */
  forwardDistill(
    tokens: Int32Array, targets: Int32Array, teacher: ArrayLike<number>, B: number, T: number, alpha: number, temp: number,
  ): ForwardStats {
    const stats = this.run(tokens, B, T);
    const N = B * T;
    this.targets = targets;
    this.distilled = true;
    const sums = distillForward(this.logitsBuf, teacher, this.losses, targets, N, this.config.vocabSize, alpha, temp, 1 / N);
    return { ...stats, loss: sums.ce / N, kl: sums.kl / N };
  }

  /**
   * Gradients of mean CE (after forwardDistill: the mean of its mixed loss) + (1/L)·Σ_l l1[l]·mean|act_l| into
   * params.grad (accumulating: zero them first); l1 has one λ per layer.
   */
  backward(l1: readonly number[]): void {
    const c = this.config, p = this.params, { B, T, tokens } = this;
    const N = B * T, D = c.dim, KV = kvDim(c), Hd = c.hiddenDim, V = c.vocabSize;
    const { dx, dn, dq, dk, dv, dO, dg, du, dh } = this;
    const att = this.attentionShape();
    // After forwardDistill the logits already hold the mean loss's gradient.
    if (!this.distilled) crossEntropyBackward(this.logitsBuf, this.targets, N, V, 1 / N);
    dx.fill(0, 0, N * D);
    dn.fill(0, 0, N * D);
    this.ops.matmulBackward(dn, p.gradient("output"), this.logitsBuf, this.nf, p.value("output"), N, D, V);
    rmsnormBackward(dx, p.gradient("output_norm"), dn, this.xf, p.value("output_norm"), this.rstdf, N, D);
    for (let l = c.nLayers - 1; l >= 0; l--) {
      const s = this.layers[l];
      const w = (name: string) => p.value(`blk.${l}.${name}`);
      const gw = (name: string) => p.gradient(`blk.${l}.${name}`);
      // MLP: x3 = x2 + Wdown · h
      dh.fill(0, 0, N * Hd);
      this.ops.matmulBackward(dh, gw("ffn_down"), dx, s.h, w("ffn_down"), N, Hd, D);
      dg.fill(0, 0, N * Hd);
      du.fill(0, 0, N * Hd);
      gatedBackward(dg, du, dh, s.g, s.u, s.a, N * Hd, this.activation, l1[l] / (c.nLayers * N * Hd));
      dn.fill(0, 0, N * D);
      this.ops.matmulBackward(dn, gw("ffn_gate"), dg, s.n2, w("ffn_gate"), N, D, Hd);
      this.ops.matmulBackward(dn, gw("ffn_up"), du, s.n2, w("ffn_up"), N, D, Hd);
      this.normBackward(dx, gw("ffn_norm"), dn, s.x2, w("ffn_norm"), s.rstd2, s.n2, N);
      // Attention: x2 = x1 + Wo · o
      dO.fill(0, 0, N * D);
      this.ops.matmulBackward(dO, gw("attn_output"), dx, s.o, w("attn_output"), N, D, D);
      dq.fill(0, 0, N * D);
      dk.fill(0, 0, N * KV);
      dv.fill(0, 0, N * KV);
      this.ops.attentionBackward(dq, dk, dv, dO, s.o, s.lse, s.q, s.k, s.v, att);
      ropeBackward(dq, N, T, c.nHeads, headSize(c), this.rope);
      ropeBackward(dk, N, T, c.nKvHeads, headSize(c), this.rope);
      dn.fill(0, 0, N * D);
      this.ops.matmulBackward(dn, gw("attn_q"), dq, s.n1, w("attn_q"), N, D, D);
      this.ops.matmulBackward(dn, gw("attn_k"), dk, s.n1, w("attn_k"), N, D, KV);
      this.ops.matmulBackward(dn, gw("attn_v"), dv, s.n1, w("attn_v"), N, D, KV);
      this.normBackward(dx, gw("attn_norm"), dn, s.x1, w("attn_norm"), s.rstd1, s.n1, N);
    }
    embeddingBackward(p.gradient("token_embd"), dx, tokens, N, D);
  }

  private attentionShape(): AttentionShape {
    const c = this.config;
    return { B: this.B, T: this.T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: headSize(c) };
  }

  private run(tokens: Int32Array, B: number, T: number): Omit<ForwardStats, "loss"> {
    const c = this.config, p = this.params;
    if (B > this.maxB || T > this.maxT || tokens.length < B * T) throw new Error(`batch ${B}×${T} does not fit ${this.maxB}×${this.maxT}`);
    this.tokens = tokens;
    this.B = B;
    this.T = T;
    const N = B * T, D = c.dim, KV = kvDim(c), Hd = c.hiddenDim;
    const att = this.attentionShape();
    // Each layer writes its output straight into the next layer's x1 (the last into xf).
    let x = this.layers[0].x1;
    embeddingForward(x, p.value("token_embd"), tokens, N, D);
    const actAbsMean: number[] = [];
    const zeroFraction: number[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const s = this.layers[l];
      const w = (name: string) => p.value(`blk.${l}.${name}`);
      this.normForward(s.n1, s.rstd1, s.x1, w("attn_norm"), N);
      this.ops.matmulForward(s.q, s.n1, w("attn_q"), N, D, D);
      this.ops.matmulForward(s.k, s.n1, w("attn_k"), N, D, KV);
      this.ops.matmulForward(s.v, s.n1, w("attn_v"), N, D, KV);
      ropeForward(s.q, N, T, c.nHeads, headSize(c), this.rope);
      ropeForward(s.k, N, T, c.nKvHeads, headSize(c), this.rope);
      this.ops.attentionForward(s.o, s.lse, s.q, s.k, s.v, att);
      this.ops.matmulForward(s.x2, s.o, w("attn_output"), N, D, D);
      for (let i = 0; i < N * D; i++) s.x2[i] += s.x1[i];
      this.normForward(s.n2, s.rstd2, s.x2, w("ffn_norm"), N);
      this.ops.matmulForward(s.g, s.n2, w("ffn_gate"), N, D, Hd);
      this.ops.matmulForward(s.u, s.n2, w("ffn_up"), N, D, Hd);
      gatedForward(s.h, s.a, s.g, s.u, N * Hd, this.activation);
      actAbsMean.push(absSum(s.a, N * Hd) / (N * Hd));
      let zeros = 0;
      for (let i = 0; i < N * Hd; i++) if (s.a[i] === 0) zeros++;
      zeroFraction.push(zeros / (N * Hd));
      x = l + 1 < c.nLayers ? this.layers[l + 1].x1 : this.xf;
      this.ops.matmulForward(x, s.h, w("ffn_down"), N, Hd, D);
      for (let i = 0; i < N * D; i++) x[i] += s.x2[i];
    }
    rmsnormForward(this.nf, this.rstdf, this.xf, p.value("output_norm"), N, D, c.normEps);
    this.ops.matmulForward(this.logitsBuf, this.nf, p.value("output"), N, D, c.vocabSize);
    return { actAbsMean, zeroFraction };
  }

  /** RMSNorm, then stage 2's ReLU. */
  private normForward(y: Floats, rstd: Floats, x: Floats, w: Floats, N: number): void {
    const c = this.config;
    rmsnormForward(y, rstd, x, w, N, c.dim, c.normEps);
    if (c.reluAfterNorm) activationForward(y, y, N * c.dim, "relu");
  }

  /** Backward of normForward: dn is masked by the ReLU (y > 0 exactly where its input was) in place. */
  private normBackward(dx: Floats, dw: Floats, dn: Floats, x: Floats, w: Floats, rstd: Floats, y: Floats, N: number): void {
    const c = this.config;
    if (c.reluAfterNorm) reluBackwardInPlace(dn, y, N * c.dim);
    rmsnormBackward(dx, dw, dn, x, w, rstd, N, c.dim);
  }
}
