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

/**
 * The min(k, n) heads with the largest scores (ties to the lowest index), written ascending into idx; returns how
 * many. `order` is scratch of at least that many entries. A partial insertion selection, O(n·k) without allocating:
 * a layer has few heads, and this runs per layer and token.
 */
export function selectTopHeads(scores: ArrayLike<number>, k: number, idx: Int32Array, order: Int32Array): number {
  const m = Math.min(k, scores.length);
  if (m <= 0) return 0;
  let len = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    // order[0, len) is by score descending, lower index first among equals: i goes after every score >= s.
    if (len === m && !(s > scores[order[m - 1]])) continue;
    let j = len < m ? len++ : m - 1;
    for (; j > 0 && s > scores[order[j - 1]]; j--) order[j] = order[j - 1];
    order[j] = i;
  }
  for (let a = 0; a < len; a++) {
    const h = order[a];
    let j = a;
    for (; j > 0 && idx[j - 1] > h; j--) idx[j] = idx[j - 1];
    idx[j] = h;
  }
  return len;
}

export class TopHeadsGate implements HeadGate {
  private readonly k: number;
  private readonly order: Int32Array;

  constructor(readonly spec: string, readonly score: HeadScore, keep: number, nHeads: number) {
    this.k = Math.round(keep * nHeads);
    this.order = new Int32Array(nHeads);
  }

  select(_l: number, scores: Float32Array | null, idx: Int32Array): number {
    if (!scores) throw new Error("TopHeadsGate needs scores");
    return selectTopHeads(scores, this.k, idx, this.order);
  }
}

export type KvPolicy = "keep" | "skip" | "mask";
export const KV_POLICIES: readonly KvPolicy[] = ["keep", "skip", "mask"];

/** A --head-gate spec: dense, topk:F, norm:F, or predictor:FILE[:topk:F] (keep null: the fraction it was fitted for). */
export type HeadGateSpec =
  | { kind: "dense" }
  | { kind: "topk" | "norm"; keep: number }
  | { kind: "predictor"; file: string; keep: number | null };

export function parseHeadGateSpec(spec: string): HeadGateSpec {
  if (spec === "dense") return { kind: "dense" };
  const p = /^predictor:(.+?)(?::topk:(.*))?$/.exec(spec);
  if (p) {
    const keep = p[2] === undefined ? null : Number(p[2]);
    if (keep !== null && !(keep > 0 && keep <= 1)) throw new Error(`--head-gate ${spec}: the kept fraction must be in (0, 1]`);
    return { kind: "predictor", file: p[1], keep };
  }
  const m = /^(topk|norm):(.+)$/.exec(spec);
  const keep = m ? Number(m[2]) : NaN;
  if (!m || !(keep >= 0 && keep <= 1)) {
    throw new Error(`--head-gate ${spec}: expected dense, topk:F, norm:F (F in [0, 1]) or predictor:FILE[:topk:F]`);
  }
  return { kind: m[1] as "topk" | "norm", keep };
}

/** The gate of a dense, topk:F or norm:F spec (a predictor spec needs its file and model: eval/gate-factory.ts). */
export function topHeadsGate(spec: string, nHeads: number, p: HeadGateSpec = parseHeadGateSpec(spec)): HeadGate | null {
  if (p.kind === "dense") return null;
  if (p.kind === "predictor") throw new Error(`--head-gate ${spec}: a predictor gate is built from its file (buildHeadGate)`);
  return new TopHeadsGate(spec, p.kind === "topk" ? "query-norm" : "output-norm", p.keep, nHeads);
}
