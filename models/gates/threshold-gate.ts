// Threshold gates: neuron i is active when its score is above the layer's ε (strictly: a score of exactly ε is
// dropped, so on a ReLU model ε = 0 skips the exact zeros, losslessly; ε = -∞ keeps every neuron).
//   cats      score = |act(g_i)|                 (CATS: ε at a calibrated quantile of the scores)
//   cett      score = |act(g_i)| · ‖W_down[:,i]‖ (ε per layer calibrated so the truncation error CETT hits a target)
// The CETT score estimates each neuron's output norm ‖a_i·W_down[:,i]‖ = |act(g_i)|·|u_i|·‖W_down[:,i]‖ from the
// gate branch alone, so that the up product can be gathered too (u_i is only known after the up product).
import { absMul } from "../../engine/ops/elementwise";
import { selectThreshold } from "../../engine/ops/select";
import type { Tensor } from "../../engine/tensor";
import type { GateScratch, NeuronGate } from "./neuron-gate";

export type ScoreKind = "act" | "act-downnorm";

export class ThresholdGate implements NeuronGate {
  readonly chooses = "gate" as const;

  constructor(
    readonly spec: string,
    readonly score: ScoreKind,
    readonly thresholds: readonly number[],
    /** ‖W_down[:, i]‖ per layer, when score is act-downnorm. */
    private readonly downNorms: readonly Tensor[] | null,
  ) {}

  select(l: number, _x: Tensor, actGate: Tensor | null, s: GateScratch): number {
    absMul(s.scores, actGate!, this.score === "act-downnorm" ? this.downNorms![l] : undefined);
    return selectThreshold(s.idx, s.scores, this.thresholds[l]);
  }
}
