// Top-k: keep the fraction F of neurons with the largest |act(g_i)| for every token.
import { absMul } from "../../engine/ops/elementwise";
import { selectTopk } from "../../engine/ops/select";
import type { Tensor } from "../../engine/tensor";
import type { GateScratch, NeuronGate } from "./neuron-gate";

export class TopkGate implements NeuronGate {
  readonly chooses = "gate" as const;
  private readonly k: number;

  constructor(readonly spec: string, keep: number, hidden: number) {
    this.k = Math.round(keep * hidden);
  }

  select(_l: number, _x: Tensor, actGate: Tensor | null, s: GateScratch): number {
    absMul(s.scores, actGate!);
    return selectTopk(s.idx, s.scores, this.k, s.work);
  }
}
