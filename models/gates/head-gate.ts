// A head gate picks the active query heads of a layer for the current token: the heads with the largest scores.
//   topk:F  score = ‖q_h‖ (the query norm; needs the query of every head)
//   norm:F  score = ‖W_o,h · o_h‖, the head's actual contribution to the residual — an oracle: it needs every
//           head's attention output, so it only simulates accuracy
//   predictor:FILE  a trained predictor reads the block input: the heads are known before any product
import type { Tensor } from "../../engine/tensor";

export type HeadScore = "query-norm" | "output-norm" | "input";

export interface HeadGate {
  readonly spec: string;
  readonly score: HeadScore;
  /**
   * Write the active heads (ascending) into idx and return how many. `scores` has one value per head for the
   * query-norm and output-norm gates; input gates read `x`, the normalised block input.
   */
  select(l: number, scores: Float32Array | null, idx: Int32Array, x?: Tensor): number;
  /** Multiply-adds the gate itself spent on its last choice. */
  readonly selectMacs?: number;
}

export class TopHeadsGate implements HeadGate {
  private readonly k: number;

  constructor(readonly spec: string, readonly score: HeadScore, keep: number, nHeads: number) {
    this.k = Math.round(keep * nHeads);
  }

  select(_l: number, scores: Float32Array | null, idx: Int32Array): number {
    if (!scores) throw new Error("TopHeadsGate needs scores");
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
    const chosen = order.slice(0, this.k).sort((a, b) => a - b);
    idx.set(chosen);
    return chosen.length;
  }
}

export type KvPolicy = "keep" | "skip" | "mask";
export const KV_POLICIES: readonly KvPolicy[] = ["keep", "skip", "mask"];

export function parseHeadGateSpec(spec: string, nHeads: number): HeadGate | null {
  if (spec === "dense") return null;
  const m = /^(topk|norm):(.+)$/.exec(spec);
  const keep = m ? Number(m[2]) : NaN;
  if (!m || !(keep >= 0 && keep <= 1)) {
    throw new Error(`--head-gate ${spec}: expected dense, topk:F or norm:F with F in [0, 1]`);
  }
  return new TopHeadsGate(spec, m[1] === "topk" ? "query-norm" : "output-norm", keep, nHeads);
}
