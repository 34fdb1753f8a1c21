// The MLP activation as a swappable module: SwiGLU computes act(W_gate x) ⊙ (W_up x).
import { gelu, relu, relu2, silu } from "../engine/ops/elementwise";
import type { Tensor } from "../engine/tensor";
import type { ActivationName } from "./config";

export interface Activation {
  readonly name: ActivationName;
  /** out = act(x); out may be x. */
  apply(out: Tensor, x: Tensor): void;
}

export const ACTIVATION_MODULES: Record<ActivationName, Activation> = {
  silu: { name: "silu", apply: silu },
  relu: { name: "relu", apply: relu },
  relu2: { name: "relu2", apply: relu2 },
  gelu: { name: "gelu", apply: gelu },
};
