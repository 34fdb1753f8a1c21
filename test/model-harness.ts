// What the model-level tests share: the logits after a run of tokens, and the relative error logits of two
// formats or layouts are compared by.
import type { LlamaModel } from "../models/llama";

/** Runs ids at positions 0, 1, … and returns (a copy of) the logits at the last. */
export function lastLogits(model: LlamaModel, ids: readonly number[]): Float32Array {
  let out = new Float32Array(0);
  ids.forEach((id, pos) => (out = model.forward(id, pos).read()));
  return out;
}

/** max |a - b| / max |b|: the relative error the design's cross-format bound (1e-5) is stated in. */
export function relError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  b.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(a[i]! - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return diff / scale;
}
