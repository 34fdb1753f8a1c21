// Single-query attention over a KV cache, grouped-query (GQA): query head h reads KV head h / (nHeads / nKvHeads).
// q: [nHeads * headSize]; kCache, vCache: [positions][kvStride] f32, KV head g at offset g * headSize;
// att: scratch [nHeads][attStride] f32 (attStride >= nPos); out: [nHeads * headSize].
// Positions 0..nPos-1 are attended (causal: the caller passes pos + 1). Heads [headStart, headEnd) are computed.
// valid: 0, or a byte map [nKvHeads][validStride]: position t of KV head g is read only when valid[g][t] != 0
// (KV-cache holes left by skipped heads are never read). The softmax then runs over the valid positions only.
import { dot, axpy } from "./simd";
import { softmax_f32 } from "./softmax";

export function attention_f32(
  out: usize, q: usize, kCache: usize, vCache: usize, att: usize,
  nHeads: i32, nKvHeads: i32, headSize: i32, kvStride: i32, nPos: i32, attStride: i32,
  headStart: i32, headEnd: i32, valid: usize, validStride: i32,
): void {
  const group = nHeads / nKvHeads;
  const scale = Mathf.sqrt(<f32>headSize);
  const posBytes = <usize>kvStride << 2;
  for (let h = headStart; h < headEnd; h++) {
    const g = h / group;
    const qh = q + (<usize>(h * headSize) << 2);
    const ah = att + (<usize>(h * attStride) << 2);
    const kh = kCache + (<usize>(g * headSize) << 2);
    const vh = vCache + (<usize>(g * headSize) << 2);
    const oh = out + (<usize>(h * headSize) << 2);
    memory.fill(oh, 0, <usize>headSize << 2);
    if (valid == 0) {
      for (let t = 0; t < nPos; t++) {
        store<f32>(ah + (<usize>t << 2), dot(qh, kh + <usize>t * posBytes, headSize) / scale);
      }
      softmax_f32(ah, nPos);
      for (let t = 0; t < nPos; t++) {
        axpy(oh, load<f32>(ah + (<usize>t << 2)), vh + <usize>t * posBytes, headSize);
      }
    } else {
      // Scores of the valid positions, compacted; the second pass walks the same positions in the same order.
      const vg = valid + <usize>(g * validStride);
      let n = 0;
      for (let t = 0; t < nPos; t++) {
        if (load<u8>(vg + <usize>t) == 0) continue;
        store<f32>(ah + (<usize>n << 2), dot(qh, kh + <usize>t * posBytes, headSize) / scale);
        n++;
      }
      softmax_f32(ah, n);
      n = 0;
      for (let t = 0; t < nPos; t++) {
        if (load<u8>(vg + <usize>t) == 0) continue;
        axpy(oh, load<f32>(ah + (<usize>n << 2)), vh + <usize>t * posBytes, headSize);
        n++;
      }
    }
  }
}
