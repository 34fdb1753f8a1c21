// Single-query attention over a KV cache, grouped-query (GQA): query head h reads KV head h / (nHeads / nKvHeads).
// q: [nHeads * headSize]; kCache, vCache: [positions][kvStride] f32, KV head g at offset g * headSize;
// att: scratch [nHeads][attStride] f32 (attStride >= nPos); out: [nHeads * headSize].
// Positions 0..nPos-1 are attended (causal: the caller passes pos + 1). heads: 0 (every head) or an i32 list of
// headCount query heads to compute, strictly ascending (engine/ops checks it); the other heads' outputs are not
// written.
// valid: 0, or a byte map [nKvHeads][validStride]: position t of KV head g is read only when valid[g][t] != 0
// (KV-cache holes left by skipped heads are never read). The softmax then runs over the valid positions only.
import { axpy, dot, listed } from "./simd";
import { softmax_f32 } from "./softmax";

// Position-outer: each cached position's K (then V) row, all KV heads contiguous, is read once for all the heads
// computed, so the cache streams sequentially; head by head it was 256-byte pieces a row apart, which the
// prefetcher follows badly (measured 1.15-1.7x faster at 64-1000 positions, 12 heads of 64). Each head's arithmetic is unchanged: the same dot per score, the
// softmax over its valid scores in order, the same axpy order over positions.
export function attention_f32(
  out: usize, q: usize, kCache: usize, vCache: usize, att: usize,
  nHeads: i32, nKvHeads: i32, headSize: i32, kvStride: i32, nPos: i32, attStride: i32,
  heads: usize, headCount: i32, valid: usize, validStride: i32,
): void {
  const group = nHeads / nKvHeads;
  const scale = Mathf.sqrt(<f32>headSize);
  const posBytes = <usize>kvStride << 2;
  const headBytes = <usize>headSize << 2;
  const attBytes = <usize>attStride << 2;
  for (let i = 0; i < headCount; i++) memory.fill(out + <usize>headAt(heads, i) * headBytes, 0, headBytes);
  // Scores, at slot t of each head's row of att.
  for (let t = 0; t < nPos; t++) {
    const kt = kCache + <usize>t * posBytes;
    for (let i = 0; i < headCount; i++) {
      const h = headAt(heads, i);
      const g = h / group;
      if (isHole(valid, validStride, g, t)) continue;
      store<f32>(att + <usize>h * attBytes + (<usize>t << 2), dot(q + <usize>h * headBytes, kt + <usize>g * headBytes, headSize) / scale);
    }
  }
  // Softmax over each head's valid scores: compacted to the front, normalised, put back at their slots.
  for (let i = 0; i < headCount; i++) {
    const h = headAt(heads, i);
    const ah = att + <usize>h * attBytes;
    if (valid == 0) {
      softmax_f32(ah, nPos);
      continue;
    }
    const g = h / group;
    let n = 0;
    for (let t = 0; t < nPos; t++) {
      if (isHole(valid, validStride, g, t)) continue;
      store<f32>(ah + (<usize>n << 2), load<f32>(ah + (<usize>t << 2)));
      n++;
    }
    softmax_f32(ah, n);
    for (let t = nPos - 1; t >= 0 && n > 0; t--) {
      if (isHole(valid, validStride, g, t)) continue;
      n--;
      store<f32>(ah + (<usize>t << 2), load<f32>(ah + (<usize>n << 2)));
    }
  }
  // Weighted sum of V, positions in order for every head.
  for (let t = 0; t < nPos; t++) {
    const vt = vCache + <usize>t * posBytes;
    for (let i = 0; i < headCount; i++) {
      const h = headAt(heads, i);
      const g = h / group;
      if (isHole(valid, validStride, g, t)) continue;
      axpy(out + <usize>h * headBytes, load<f32>(att + <usize>h * attBytes + (<usize>t << 2)), vt + <usize>g * headBytes, headSize);
    }
  }
}

// Query head i of the call: every head in order, or the list's i-th.
@inline function headAt(heads: usize, i: i32): i32 {
  return heads == 0 ? i : listed(heads, i);
}

// Position t of KV head g was never written (a hole left by a skipped head): not read.
@inline function isHole(valid: usize, validStride: i32, g: i32, t: i32): bool {
  return valid != 0 && load<u8>(valid + <usize>(g * validStride + t)) == 0;
}
