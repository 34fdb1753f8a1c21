// A trained head gate: per layer, logits = W2·σ(W1·x + b1) + b2 over the query heads from the normalised block
// input x, so the kept heads are known before any attention product (their W_q rows alone are computed; under skip,
// only the K/V rows their KV heads need). Keeps the top fraction of logits. Fitted by `fit-predictors --heads`.
import { DynactError } from "../../engine/errors";
import type { Tensor } from "../../engine/tensor";
import type { LlamaModel } from "../llama";
import { selectTopHeads, type HeadGate } from "./head-gate";
import { predictorMacs, type Predictor } from "./predictor-file";
import { predictorLogits, predictorTensors, type LayerTensors } from "./predictor-gate";

export class HeadPredictorGate implements HeadGate {
  readonly score = "input" as const;
  readonly selectMacs: number;
  private readonly layers: LayerTensors[];
  private readonly mid: Tensor;
  private readonly logits: Tensor;
  private readonly k: number;
  private readonly order: Int32Array;

  constructor(readonly spec: string, private readonly p: Predictor, model: LlamaModel, keep: number) {
    const { dim: d, hidden: h } = p.header;
    if (p.header.units !== "heads" || h !== model.config.nHeads || d !== model.config.dim) {
      throw new DynactError(`${spec}: not a head predictor for this model (fit one with 'dynact fit-predictors --heads')`);
    }
    ({ layers: this.layers, mid: this.mid, logits: this.logits } = predictorTensors(p, model));
    this.k = Math.max(1, Math.round(keep * h));
    this.order = new Int32Array(h);
    this.selectMacs = predictorMacs(p.header);
  }

  select(l: number, _scores: Float32Array | null, idx: Int32Array, x?: Tensor): number {
    predictorLogits(this.layers[l], this.p.header.sigma, x!, this.mid, this.logits);
    return selectTopHeads(this.logits.f32(), this.k, idx, this.order);
  }
}
