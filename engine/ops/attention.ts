import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/** The query heads to compute: the first `count` ids of the i32 tensor `idx`, strictly ascending. */
export interface HeadList {
  idx: Tensor;
  count: number;
}

/**
 * Single-query causal attention with grouped KV heads.
 * q, out: [nHeads * headSize]; kCache, vCache: [positions, nKvHeads * headSize]; att: scratch [nHeads, >= nPos].
 * Attends positions 0..nPos-1; with `valid` (u8 [nKvHeads, positions] as an i32-free byte map, see KVCache) only
 * the positions marked valid for each KV head. `heads` (default: all) lists the query heads to compute, all in one
 * pass over the cache; the other heads' outputs are left as they are. A head's output has the same bits whichever
 * heads are computed with it.
 */
export function attention(
  out: Tensor, q: Tensor, kCache: Tensor, vCache: Tensor, att: Tensor, shape: AttentionShape, nPos: number,
  heads: HeadList | null = null, valid: Tensor | null = null,
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
  if (heads) {
    const { idx, count } = heads;
    check("attention", idx.engine === q.engine, () => "head list from another engine");
    check("attention", idx.dtype === "i32" && Number.isInteger(count) && count >= 0 && count <= idx.size, () =>
      `a list of ${count} heads in ${idx.dtype} ${shapeOf(idx)}`);
    const ids = idx.i32();
    // In range (the kernel addresses q, the cache and att by these ids) and ascending, so no head is listed twice
    // (its softmax would run twice over the same scores). One check after the loop: it runs per layer and token.
    let i = 0;
    while (i < count && ids[i] >= 0 && ids[i] < nHeads && (i === 0 || ids[i] > ids[i - 1])) i++;
    check("attention", i === count, () =>
      `head list [${Array.from(ids.subarray(0, count))}] of ${nHeads} heads: ids must be ascending and below ${nHeads}`);
  }
  if (valid) {
    check("attention", valid.engine === q.engine, () => "KV hole map from another engine");
    check("attention", valid.dtype === "u8" && valid.shape.length === 2 && valid.shape[0] === nKvHeads &&
      valid.shape[1] >= nPos, () => `valid ${shapeOf(valid)} (${valid.dtype}) for ${nKvHeads} KV heads, ${nPos} positions`);
  }
  q.engine.kernels.attention_f32(out.offset, q.offset, kCache.offset, vCache.offset, att.offset,
    nHeads, nKvHeads, headSize, kvDim, nPos, att.shape[1], heads ? heads.idx.offset : 0, heads ? heads.count : nHeads,
    valid ? valid.offset : 0, valid ? valid.shape[1] : 0);
}
