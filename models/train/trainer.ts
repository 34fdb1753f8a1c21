// The training loop: next-token cross-entropy (+ the L1 penalty on MLP activations) on random windows of the
// training text, AdamW with a warm-up + cosine learning rate, gradient clipping by global norm, held-out loss
// every evalEvery steps. Deterministic: batch `step` depends only on (seed, step), and all math is sequential.
// With a sparsity target, λ is withdrawn from layers past it (l1Steering). With a teacher (distillation), each
// batch first runs through the frozen teacher and the student learns from distill.ts's mix of CE and KL.
import { AdamW, gradNorm } from "./adamw";
import { heldoutSequences, sampleBatch, type TextSplit } from "./data";
import type { TrainModel } from "./model";
import { l1Weight, learningRate } from "./schedule";

export interface TrainOptions {
  steps: number;
  /** Peak learning rate, reached after `warmup` steps; cosine decay to lr/10 at the last step. */
  lr: number;
  warmup: number;
  batch: number;
  seq: number;
  /** λ of the L1 penalty on act(W_gate x), averaged over positions, layers and neurons (0: none). */
  l1: number;
  /** Steps over which λ ramps up linearly from 0. */
  l1Warmup: number;
  /**
   * Target fraction of exact zeros of act(W_gate x) per layer (0: none): layer l's λ is multiplied by
   * l1Steering(target, its zero fraction in the batch).
   */
  sparsity: number;
  seed: number;
  evalEvery: number;
  /** Tokens after the evaluation tokens kept out of training for the held-out loss. */
  heldout: number;
  weightDecay: number;
  /** Maximum global gradient norm. */
  gradClip: number;
  /** Weight α of the distillation term (0: plain cross-entropy, no teacher). */
  distill: number;
  /** Distillation temperature τ. */
  distillTemp: number;
  /** Tokens of teacher-generated text added to the training tokens (0: none). */
  synthetic: number;
}

/** Values of the options later versions added, for checkpoints written before them. */
export const ADDED_OPTION_DEFAULTS: Pick<TrainOptions, "distill" | "distillTemp" | "synthetic"> = {
  distill: 0, distillTemp: 1, synthetic: 0,
};

export interface StepResult {
  /** The step just done (0-based). */
  step: number;
  /** Mean cross-entropy on the batch (with distillation too: the CE part alone). */
  loss: number;
  /** With distillation: mean τ²·KL(teacher ‖ student) on the batch; else 0. */
  kl: number;
  /** The L1 term added to the loss: mean over layers of λ_l·mean|act_l|. */
  l1Penalty: number;
  /** λ_l per layer at this step. */
  l1: number[];
  lr: number;
  /** Before clipping. */
  gradNorm: number;
  zeroFraction: number[];
}

export interface EvalResult {
  /** Mean NLL (nats) over the held-out tokens. */
  loss: number;
  perplexity: number;
  tokens: number;
  /** Per layer: fraction of act(W_gate x) exactly 0 over the held-out tokens. */
  zeroFraction: number[];
}

const MIN_LR_RATIO = 0.1;
// Steering on the batch's own sparsity, a hinge that only ever lowers λ: a layer at or short of the target gets λ,
// one SPARSITY_BAND past it none, linearly between. Without it one λ over-sparsifies some layers (layer 0 of
// stories260K reaches ~90% while the last layers sit at the target), and every point of sparsity past the target
// costs perplexity. Measured on stories260K, raising λ for layers short of the target (up to 2λ), integrating the
// shortfall, or steering exponentially each did worse: more λ early wrecks more than the extra steps recover.
export const SPARSITY_BAND = 0.02;

/** The factor on λ for a layer at zero fraction z. */
export function l1Steering(target: number, z: number): number {
  return Math.min(1, Math.max(0, 1 + (target - z) / SPARSITY_BAND));
}

export class Trainer {
  readonly opt: AdamW;
  /** The next step to run. */
  step = 0;
  private readonly tokens: Int32Array;
  private readonly targets: Int32Array;

  /** `teacher` (a frozen model with the same vocabulary) is needed when opts.distill > 0. */
  constructor(
    readonly model: TrainModel, readonly split: TextSplit, readonly opts: TrainOptions, readonly bos: number,
    readonly teacher?: TrainModel,
  ) {
    if (opts.distill > 0 && !teacher) throw new Error("distillation needs a teacher model");
    this.opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: opts.weightDecay });
    this.tokens = new Int32Array(opts.batch * opts.seq);
    this.targets = new Int32Array(opts.batch * opts.seq);
  }

  get done(): boolean {
    return this.step >= this.opts.steps;
  }

  runStep(): StepResult {
    const { model, opts, step } = this;
    const { batch: B, seq: T } = opts;
    sampleBatch(this.split.train, B, T, this.bos, opts.seed, step, this.tokens, this.targets);
    const f = opts.distill > 0
      ? model.forwardDistill(this.tokens, this.targets, this.teacher!.logits(this.tokens, B, T), B, T, opts.distill, opts.distillTemp)
      : model.forward(this.tokens, this.targets, B, T);
    const base = l1Weight(step, opts.l1, opts.l1Warmup);
    const l1 = f.zeroFraction.map((z) => (opts.sparsity > 0 ? base * l1Steering(opts.sparsity, z) : base));
    model.params.grad.fill(0);
    model.backward(l1);
    const norm = gradNorm(model.params);
    const lr = learningRate(step, { lr: opts.lr, warmup: opts.warmup, steps: opts.steps, minRatio: MIN_LR_RATIO });
    this.opt.update(lr, norm > opts.gradClip ? opts.gradClip / norm : 1);
    this.step++;
    const l1Penalty = l1.reduce((sum, x, l) => sum + x * f.actAbsMean[l], 0) / l1.length;
    return { step, loss: f.loss, kl: f.kl ?? 0, l1Penalty, l1, lr, gradNorm: norm, zeroFraction: f.zeroFraction };
  }

  /** Held-out loss: each window of `seq` tokens from BOS, up to `batch` equal-length windows per forward pass. */
  evaluate(): EvalResult {
    const { batch: B, seq: T } = this.opts;
    const seqs = heldoutSequences(this.split.heldout, T, this.bos);
    const L = this.model.config.nLayers;
    let nll = 0, tokens = 0;
    const zeros = new Array<number>(L).fill(0);
    for (let i = 0; i < seqs.length; ) {
      const len = seqs[i].tokens.length;
      let n = 1;
      while (n < B && i + n < seqs.length && seqs[i + n].tokens.length === len) n++;
      const group = seqs.slice(i, i + n);
      const f = this.model.forward(concat(group.map((s) => s.tokens)), concat(group.map((s) => s.targets)), n, len);
      nll += f.loss * n * len;
      f.zeroFraction.forEach((z, l) => (zeros[l] += z * n * len));
      tokens += n * len;
      i += n;
    }
    return { loss: nll / tokens, perplexity: Math.exp(nll / tokens), tokens, zeroFraction: zeros.map((z) => z / tokens) };
  }
}

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
