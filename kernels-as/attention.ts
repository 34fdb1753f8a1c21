// Single-query attention over a KV cache, grouped-query (GQA): query head h reads KV head h / (nHeads / nKvHeads).
// q: [nHeads * headSize]; kCache, vCache: [positions][kvStride] f32, KV head g at offset g * headSize;
// att: scratch [nHeads][attStride] f32 (attStride >= nPos); out: [nHeads * headSize].
// Positions 0..nPos-1 are attended (causal: the caller passes pos + 1). Heads [headStart, headEnd) are computed.
import { dot, axpy } from "./simd";
import { softmax_f32 } from "./softmax";

export function attention_f32(
  out: usize, q: usize, kCache: usize, vCache: usize, att: usize,
  nHeads: i32, nKvHeads: i32, headSize: i32, kvStride: i32, nPos: i32, attStride: i32,
  headStart: i32, headEnd: i32,
): void {
  const group = nHeads / nKvHeads;
  const scale = Mathf.sqrt(<f32>headSize);
  const posBytes = <usize>kvStride << 2;
  for (let h = headStart; h < headEnd; h++) {
    const g = h / group;
    const qh = q + (<usize>(h * headSize) << 2);
    const ah = att + (<usize>(h * attStride) << 2);
    const kh = kCache + (<usize>(g * headSize) << 2);
    for (let t = 0; t < nPos; t++) {
      store<f32>(ah + (<usize>t << 2), dot(qh, kh + <usize>t * posBytes, headSize) / scale);
    }
    softmax_f32(ah, nPos);
    const oh = out + (<usize>(h * headSize) << 2);
    memory.fill(oh, 0, <usize>headSize << 2);
    const vh = vCache + (<usize>(g * headSize) << 2);
    for (let t = 0; t < nPos; t++) {
      axpy(oh, load<f32>(ah + (<usize>t << 2)), vh + <usize>t * posBytes, headSize);
    }
  }
}
