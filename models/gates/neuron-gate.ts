// A neuron gate picks the active intermediate neurons S of a layer's MLP for the current token.
// Gates that judge neurons by act(W_gate x) need the gate product first ("gate"); gates that know S from the
// block input or earlier state ("input") let all three products be gathered.
import type { Tensor } from "../../engine/tensor";

export interface GateScratch {
  /** i32 [hidden]: the selection is written here, ascending. */
  idx: Tensor;
  /** f32 [hidden] scratch for scores. */
  scores: Tensor;
  /** f32 [hidden] scratch for selection. */
  work: Tensor;
}

export interface NeuronGate {
  /** The spec it was made from, e.g. "cats:0.5". */
  readonly spec: string;
  readonly chooses: "gate" | "input";
  /**
   * Write S for layer l into scratch.idx and return |S|.
   * `actGate` is act(W_gate x) over all neurons for "gate" gates; `x` is the normalised block input.
   */
  select(l: number, x: Tensor, actGate: Tensor | null, scratch: GateScratch): number;
  /** Multiply-adds the last select spent on products of its own (a predictor's); counted in the FFN stats. */
  readonly selectMacs?: number;
  /**
   * Mask mode: the set an oracle would choose from layer l's dense act(g) and u (1 = active), to score this
   * gate's choice against (predictors: recall and precision in the FFN stats).
   */
  oracle?(l: number, actGate: Tensor, up: Tensor): Uint8Array;
  /** Sees layer l's full activation a = act(g) ⊙ u whenever the MLP ran dense (prompt-based gates). */
  observe?(l: number, a: Tensor): void;
  /** A new sequence starts (its prompt follows). */
  beginSequence?(): void;
  /** The prompt is done; generated tokens follow. */
  beginGeneration?(): void;
}
