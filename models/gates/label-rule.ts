// Oracle active sets: which neurons of a layer "should" be on for a token, judged from the dense activations.
// Predictors are trained to imitate them, and in mask mode a predictor gate is scored against them.
//   relu     a_i = act(g_i)·u_i ≠ 0 (exact sparsity of a ReLU-family model)
//   topk:F   the fraction F of neurons with the largest |act(g_i)| (ties to the lowest id, as TopkGate)
//   cett:T   |act(g_i)|·‖W_down[:,i]‖ > ε_l with ε_l calibrated for CETT T (the cett threshold gate's set)
import { DynactError } from "../../engine/errors";

export type LabelRule = { kind: "relu" } | { kind: "topk"; keep: number } | { kind: "cett"; target: number };

export const LABEL_RULES = "relu, topk:F, cett:T";

export function parseLabelRule(s: string): LabelRule {
  const [kind, arg, ...rest] = s.split(":");
  const v = arg === undefined || arg.trim() === "" ? NaN : Number(arg);
  if (rest.length === 0) {
    if (kind === "relu" && arg === undefined) return { kind };
    if (kind === "topk" && v > 0 && v <= 1) return { kind, keep: v };
    if (kind === "cett" && v >= 0 && v <= 1) return { kind, target: v };
  }
  throw new DynactError(`label rule '${s}': expected one of ${LABEL_RULES} (F in (0, 1], T in [0, 1])`);
}

export function formatLabelRule(r: LabelRule): string {
  return r.kind === "relu" ? "relu" : r.kind === "topk" ? `topk:${r.keep}` : `cett:${r.target}`;
}

/** Computes a rule's oracle set for one layer and token. */
export class Labeler {
  private readonly sorted: Float32Array;

  /**
   * `thresholds` and `downNorms` (‖W_down[:,i]‖ per layer) are needed by cett rules only; a threshold of
   * -Infinity keeps every neuron.
   */
  constructor(
    readonly rule: LabelRule,
    private readonly hidden: number,
    private readonly thresholds: readonly number[] | null = null,
    private readonly downNorms: readonly Float32Array[] | null = null,
  ) {
    if (rule.kind === "cett" && (!thresholds || !downNorms)) throw new DynactError("cett labels need thresholds and W_down norms");
    this.sorted = new Float32Array(hidden);
  }

  /** out[i] = 1 when neuron i of layer l is in the oracle set, else 0; returns the set's size. */
  label(l: number, actGate: Float32Array, up: Float32Array, out: Uint8Array): number {
    const h = this.hidden;
    const r = this.rule;
    let n = 0;
    if (r.kind === "relu") {
      for (let i = 0; i < h; i++) n += out[i] = actGate[i] * up[i] !== 0 ? 1 : 0;
    } else if (r.kind === "cett") {
      const eps = this.thresholds![l];
      const norms = this.downNorms![l];
      // The score rounded to f32, as the threshold gate's kernel computes it.
      for (let i = 0; i < h; i++) n += out[i] = Math.fround(Math.abs(actGate[i]) * norms[i]) > eps ? 1 : 0;
    } else {
      const k = Math.round(r.keep * h);
      const s = this.sorted;
      for (let i = 0; i < h; i++) s[i] = Math.abs(actGate[i]);
      s.sort();
      const kth = k > 0 ? s[h - k] : Infinity;
      // Strictly above the k-th largest first, then ties to the lowest ids until k are in.
      for (let i = 0; i < h; i++) n += out[i] = Math.abs(actGate[i]) > kth ? 1 : 0;
      for (let i = 0; i < h && n < k; i++) if (out[i] === 0 && Math.abs(actGate[i]) === kth) n += out[i] = 1;
    }
    return n;
  }
}
