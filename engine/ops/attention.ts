import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/**
 * Single-query causal attention with grouped KV heads.
 * q, out: [nHeads * headSize]; kCache, vCache: [positions, nKvHeads * headSize]; att: scratch [nHeads, >= nPos].
 * Attends positions 0..nPos-1; with `valid` (u8 [nKvHeads, positions] as an i32-free byte map, see KVCache) only
 * the positions marked valid for each KV head.
 */
export function attention(
  out: Tensor, q: Tensor, kCache: Tensor, vCache: Tensor, att: Tensor, shape: AttentionShape, nPos: number,
  headStart = 0, headEnd = shape.nHeads, valid: Tensor | null = null,
): void {
  checkF32("attention", out, q, kCache, vCache, att);
  const { nHeads, nKvHeads, headSize } = shape;
  const kvDim = nKvHeads * headSize;
  check("attention", nHeads > 0 && nKvHeads > 0 && nHeads % nKvHeads === 0 && headSize > 0, () =>
    `${nHeads} heads over ${nKvHeads} KV heads of size ${headSize}`);
  check("attention", q.size === nHeads * headSize && out.size === q.size, () =>
    `q ${shapeOf(q)}, out ${shapeOf(out)} for ${nHeads} heads of ${headSize}`);
  check("attention", kCache.shape.length === 2 && kCache.shape[1] === kvDim && vCache.shape[1] === kvDim &&
    vCache.shape[0] === kCache.shape[0], () => `kCache ${shapeOf(kCache)}, vCache ${shapeOf(vCache)}, kv dim ${kvDim}`);
  check("attention", nPos >= 1 && nPos <= kCache.shape[0], () => `${nPos} positions of ${kCache.shape[0]}`);
  check("attention", att.shape.length === 2 && att.shape[0] === nHeads && att.shape[1] >= nPos, () =>
    `att ${shapeOf(att)} for ${nHeads} heads and ${nPos} positions`);
  check("attention", 0 <= headStart && headStart <= headEnd && headEnd <= nHeads, () =>
    `heads [${headStart}, ${headEnd}) of ${nHeads}`);
  if (valid) {
    check("attention", valid.dtype === "u8" && valid.shape.length === 2 && valid.shape[0] === nKvHeads &&
      valid.shape[1] >= nPos, () => `valid ${shapeOf(valid)} (${valid.dtype}) for ${nKvHeads} KV heads, ${nPos} positions`);
  }
  q.engine.kernels.attention_f32(out.offset, q.offset, kCache.offset, vCache.offset, att.offset,
    nHeads, nKvHeads, headSize, kvDim, nPos, att.shape[1], headStart, headEnd,
    valid ? valid.offset : 0, valid ? valid.shape[1] : 0);
}
