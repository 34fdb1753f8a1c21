// The row-interleaved layouts q8_0_r4 / q4_0_r4 (kernels-as/matvec_quant.ts): for every group of G = 4 rows (the
// last group of a matrix may have G < 4), block b of the group holds the G rows' f16 scales, then their G quant
// arrays, so the quantized GEMV reads one sequential run of memory. Same bytes per row as the plain layout.
import { blockType, isInterleaved, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, rowBytes, type DType } from "./dtype";
import type { Tensor } from "./tensor";
import { ShapeError } from "./errors";
import { dequantize } from "./quant";

/** The row-interleaved dtype of a plain quantized one. */
export function interleavedType(dtype: DType): "q8_0_r4" | "q4_0_r4" {
  if (dtype === "q8_0") return "q8_0_r4";
  if (dtype === "q4_0") return "q4_0_r4";
  throw new ShapeError(`${dtype} has no row-interleaved layout`);
}

/** Copies between the plain layout (`plain`) and the interleaved one (`packed`) of a [rows, cols] matrix. */
function permute(dtype: DType, src: Uint8Array, dst: Uint8Array, rows: number, cols: number, toPacked: boolean): void {
  const base = blockType(dtype);
  if (!base) throw new ShapeError(`${dtype} is not a quantized type`);
  const bb = base === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const qb = bb - 2;
  const rb = rowBytes(base, cols);
  const need = rows * rb;
  if (src.length < need || dst.length < need) throw new ShapeError(`repack: [${rows}, ${cols}] ${dtype} needs ${need} bytes`);
  const nb = cols / QK;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    const g = Math.min(4, rows - r0);
    const group = r0 * rb;
    for (let k = 0; k < g; k++) {
      const row = group + k * rb;
      for (let b = 0; b < nb; b++) {
        const plain = row + b * bb;
        const packed = group + b * g * bb;
        const scale = packed + 2 * k;
        const quants = packed + 2 * g + k * qb;
        if (toPacked) {
          dst[scale] = src[plain];
          dst[scale + 1] = src[plain + 1];
          dst.set(src.subarray(plain + 2, plain + bb), quants);
        } else {
          dst[plain] = src[scale];
          dst[plain + 1] = src[scale + 1];
          dst.set(src.subarray(quants, quants + qb), plain + 2);
        }
      }
    }
  }
}

/** The bytes of a plain q8_0/q4_0 [rows, cols] matrix in the interleaved layout, written to `dst`. */
export function packRows4(dtype: DType, plain: Uint8Array, dst: Uint8Array, rows: number, cols: number): void {
  permute(dtype, plain, dst, rows, cols, true);
}

/** The plain layout of an interleaved [rows, cols] matrix (a new array). */
export function unpackRows4(dtype: DType, packed: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * rowBytes(dtype, cols));
  permute(dtype, packed, out, rows, cols, false);
  return out;
}

/** The values of a [rows, cols] matrix stored as `dtype`, whatever its layout. */
export function dequantizeMatrix(dtype: DType, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  if (isInterleaved(dtype)) {
    return dequantize(blockType(dtype)!, unpackRows4(dtype, bytes, rows, cols), rows * cols);
  }
  return dequantize(dtype, bytes, rows * cols);
}

/** A 2-D tensor's values as f32: its own memory when it is f32 (a view, not a copy), else decoded. */
export function matrixValues(m: Tensor): Float32Array {
  return m.dtype === "f32" ? m.f32() : dequantizeMatrix(m.dtype, m.bytesView(), m.shape[0], m.shape[1]);
}
