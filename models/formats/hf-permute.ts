// Hugging Face LLaMA checkpoints reorder the rows of W_q and W_k within each head so that RoPE can rotate the
// first half of a head against the second half; we (like llama2.c and GGUF) rotate adjacent pairs. Per head of
// `headSize` rows, HF row t·half + i holds our row 2i + t (t ∈ {0, 1}, i < half = headSize/2): the permute()
// of transformers' convert_llama_weights_to_hf.py. Rows move whole, so this works on the bytes of any dtype.
import { ShapeError } from "../../engine/errors";

/** Reorder rows in place from HF's half-split order to adjacent pairs (what loading a safetensors W_q/W_k needs). */
export function halfSplitToInterleaved(data: Uint8Array, rows: number, heads: number): void {
  reorderHeads(data, rows, heads, (half, t, i) => [2 * i + t, t * half + i]);
}

/** Reorder rows in place from adjacent pairs to HF's half-split order (what writing safetensors needs). */
export function interleavedToHalfSplit(data: Uint8Array, rows: number, heads: number): void {
  reorderHeads(data, rows, heads, (half, t, i) => [t * half + i, 2 * i + t]);
}

// For each head, row `to` of the result is row `from` of the input: one head is copied aside at a time.
function reorderHeads(
  data: Uint8Array, rows: number, heads: number, map: (half: number, t: number, i: number) => [to: number, from: number],
): void {
  const headRows = rows / heads;
  if (!Number.isInteger(headRows) || headRows % 2 !== 0 || data.length % rows !== 0) {
    throw new ShapeError(`cannot split ${rows} rows of ${data.length} bytes into ${heads} heads of an even size`);
  }
  const rowBytes = data.length / rows;
  const half = headRows / 2;
  const head = new Uint8Array(headRows * rowBytes);
  for (let h = 0; h < heads; h++) {
    const base = h * headRows * rowBytes;
    head.set(data.subarray(base, base + head.length));
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < half; i++) {
        const [to, from] = map(half, t, i);
        data.set(head.subarray(from * rowBytes, (from + 1) * rowBytes), base + to * rowBytes);
      }
    }
  }
}
