// How sparse the MLP activations are: the fraction of exact zeros of act(W_gate x) per layer over every token a
// model runs, observed through the FFN tracer (dense path). A ReLU model's zeros are neurons whose down
// projection can be skipped with no change to the output.
import type { FfnTracer } from "../models/ffn";

export class ActivationZeros {
  private readonly zeros: number[];
  private readonly values: number[];

  constructor(nLayers: number) {
    this.zeros = new Array<number>(nLayers).fill(0);
    this.values = new Array<number>(nLayers).fill(0);
  }

  readonly tracer: FfnTracer = (l, actGate) => {
    const a = actGate.f32();
    let z = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === 0) z++;
    this.zeros[l] += z;
    this.values[l] += a.length;
  };

  /** Per layer (0 where nothing was observed). */
  fractions(): number[] {
    return this.zeros.map((z, l) => (this.values[l] ? z / this.values[l] : 0));
  }
}
