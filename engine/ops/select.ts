// Choosing the active set S from per-neuron scores. Indices come out ascending.
import type { Tensor } from "../tensor";
import { check, checkF32 } from "./check";

function checkOut(op: string, idx: Tensor, scores: Tensor): void {
  checkF32(op, scores);
  check(op, idx.dtype === "i32" && idx.size >= scores.size, () => `idx must be i32 with room for ${scores.size}`);
}

/** S = { i : scores[i] > eps } (strict: a score of exactly eps is dropped, so eps = 0 drops exact zeros); returns |S|. */
export function selectThreshold(idx: Tensor, scores: Tensor, eps: number): number {
  checkOut("selectThreshold", idx, scores);
  return scores.engine.kernels.select_threshold_f32(idx.offset, scores.offset, scores.size, eps);
}

/** The k-th largest score (1-based k); scratch (f32, ≥ scores.size) is clobbered. */
export function kthLargest(scores: Tensor, k: number, scratch: Tensor): number {
  checkF32("kthLargest", scores, scratch);
  check("kthLargest", Number.isInteger(k) && k >= 1 && k <= scores.size && scratch.size >= scores.size, () =>
    `k ${k} of ${scores.size} (scratch ${scratch.size})`);
  return scores.engine.kernels.kth_largest_f32(scores.offset, scores.size, k, scratch.offset);
}

/** Exactly min(k, n) indices of the largest scores (ties to the lowest id); returns the count. */
export function selectTopk(idx: Tensor, scores: Tensor, k: number, scratch: Tensor): number {
  checkOut("selectTopk", idx, scores);
  check("selectTopk", Number.isInteger(k) && k >= 0 && scratch.size >= scores.size, () => `k ${k}, scratch ${scratch.size}`);
  return scores.engine.kernels.select_topk_f32(idx.offset, scores.offset, scores.size, k, scratch.offset);
}
