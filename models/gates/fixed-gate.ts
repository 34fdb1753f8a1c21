// A gate with a given active set: for benchmarks (a sparsity level without a calibrated model) and tests.
// `chooses` says which execution path it stands for: "input" (S known up front: gate, up and down gathered) or
// "gate" (the gate product runs dense first, as for CATS/CETT gates).
import type { Tensor } from "../../engine/tensor";
import type { GateScratch, NeuronGate } from "./neuron-gate";

export class FixedGate implements NeuronGate {
  readonly spec = "fixed";

  constructor(readonly chooses: "gate" | "input", private readonly idx: readonly number[]) {}

  select(_l: number, _x: Tensor, _actGate: Tensor | null, s: GateScratch): number {
    s.idx.i32().set(this.idx);
    return this.idx.length;
  }
}
