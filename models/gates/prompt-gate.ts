// Gates that choose the neurons once, from the prompt, and keep them for every generated token (Griffin; TDA).
// Over the prompt the MLP runs dense and each neuron's score accumulates: the L2 norm over prompt tokens of its
// activation a_i = act(g_i)·u_i after normalising each token's activation vector to unit length (Griffin's
// statistic). At the start of generation each layer keeps
//   griffin:F  the fraction F of neurons with the largest scores
//   tda:T      the neurons whose score is at least T × the layer's largest score
import type { Tensor } from "../../engine/tensor";
import type { GateScratch, NeuronGate } from "./neuron-gate";

export class PromptGate implements NeuronGate {
  readonly chooses = "input" as const;
  private readonly sumSq: Float64Array[];
  private sets: Int32Array[] | null = null;

  constructor(
    readonly spec: string,
    private readonly rule: { kind: "griffin"; keep: number } | { kind: "tda"; relative: number },
    nLayers: number,
    private readonly hidden: number,
  ) {
    this.sumSq = Array.from({ length: nLayers }, () => new Float64Array(hidden));
  }

  beginSequence(): void {
    this.sets = null;
    for (const s of this.sumSq) s.fill(0);
  }

  observe(l: number, a: Tensor): void {
    if (this.sets) return;
    const v = a.f32();
    let norm = 0;
    for (let i = 0; i < v.length; i++) norm += v[i] * v[i];
    if (norm === 0) return;
    const s = this.sumSq[l];
    for (let i = 0; i < v.length; i++) s[i] += (v[i] * v[i]) / norm;
  }

  beginGeneration(): void {
    this.sets = this.sumSq.map((scores) => {
      const order = Array.from(scores.keys());
      if (this.rule.kind === "griffin") {
        const k = Math.round(this.rule.keep * this.hidden);
        order.sort((a, b) => scores[b] - scores[a] || a - b);
        return Int32Array.from(order.slice(0, k)).sort();
      }
      const max = Math.max(...scores);
      const cut = this.rule.relative * max;
      return Int32Array.from(order.filter((i) => scores[i] >= cut && scores[i] > 0));
    });
  }

  select(l: number, _x: Tensor, _g: Tensor | null, s: GateScratch): number {
    if (!this.sets) return this.hidden; // prompt: dense
    s.idx.i32().set(this.sets[l]);
    return this.sets[l].length;
  }
}
