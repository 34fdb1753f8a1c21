// A trained head gate: per layer, logits = W2·σ(W1·x + b1) + b2 over the query heads from the normalised block
// input x, so the kept heads are known before any attention product (their W_q rows alone are computed; under skip,
// only the K/V rows their KV heads need). Keeps the top fraction of logits. Fitted by `fit-predictors --heads`.
import { DynactError } from "../../engine/errors";
import { add, relu } from "../../engine/ops/elementwise";
import { matvec } from "../../engine/ops/matvec";
import type { Tensor } from "../../engine/tensor";
import type { LlamaModel } from "../llama";
import type { HeadGate } from "./head-gate";
import { predictorMacs, type Predictor } from "./predictor-file";

export class HeadPredictorGate implements HeadGate {
  readonly score = "input" as const;
  readonly selectMacs: number;
  private readonly layers: { w1: Tensor; b1: Tensor; w2: Tensor; b2: Tensor }[];
  private readonly mid: Tensor;
  private readonly logits: Tensor;
  private readonly k: number;

  constructor(readonly spec: string, private readonly p: Predictor, model: LlamaModel, keep: number) {
    const { rank: r, dim: d, hidden: h } = p.header;
    if (p.header.units !== "heads" || h !== model.config.nHeads || d !== model.config.dim) {
      throw new DynactError(`${spec}: not a head predictor for this model (fit one with 'dynact fit-predictors --heads')`);
    }
    const e = model.engine;
    this.layers = p.weights.map((w) => {
      let at = 0;
      const part = (shape: number[]) => e.from(w.subarray(at, (at += shape.reduce((a, b) => a * b))), shape);
      return { w1: part([r, d]), b1: part([r]), w2: part([h, r]), b2: part([h]) };
    });
    this.mid = e.tensor([r]);
    this.logits = e.tensor([h]);
    this.k = Math.max(1, Math.round(keep * h));
    this.selectMacs = predictorMacs(p.header);
  }

  select(l: number, _scores: Float32Array | null, idx: Int32Array, x?: Tensor): number {
    const t = this.layers[l];
    matvec(this.mid, t.w1, x!);
    add(this.mid, this.mid, t.b1);
    if (this.p.header.sigma === "relu") relu(this.mid, this.mid);
    matvec(this.logits, t.w2, this.mid);
    add(this.logits, this.logits, t.b2);
    const z = this.logits.f32();
    const chosen = Array.from(z.keys()).sort((a, b) => z[b] - z[a] || a - b).slice(0, this.k).sort((a, b) => a - b);
    idx.set(chosen);
    return chosen.length;
  }
}
