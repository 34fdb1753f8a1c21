// Element types a tensor can hold, and their byte sizes. The quantized types store blocks of 32 values along the
// innermost dimension (ggml's layout): Q8_0 = f16 scale + 32 int8 (34 bytes), Q4_0 = f16 scale + 16 bytes of
// nibbles (18 bytes). The kernels' block structs mirror these numbers in kernels-as/blocks.ts.
import { ShapeError } from "./errors";

export type DType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "i32" | "u8";
export const DTYPES: readonly DType[] = ["f32", "f16", "bf16", "q8_0", "q4_0", "i32", "u8"];

export const QK = 32;
export const Q8_0_BLOCK_BYTES = 34;
export const Q4_0_BLOCK_BYTES = 18;

export function isQuantized(dtype: DType): boolean {
  return dtype === "q8_0" || dtype === "q4_0";
}

/** Bytes per 32 values of an activation quantized for the quantized products (kernels-as quantize_act_q8_0 / _q4_0, one layout size). */
export const ACT_BLOCK_BYTES = 72;

/** Bytes of `n` activation values quantized by quantize_act_q8_0 or _q4_0 (n a multiple of 32). */
export function activationBytes(n: number): number {
  if (n % QK !== 0) throw new ShapeError(`quantized activations need a multiple of ${QK} values, got ${n}`);
  return (n / QK) * ACT_BLOCK_BYTES;
}

/** Bytes of a row of `n` values (quantized types need n divisible by 32). */
export function rowBytes(dtype: DType, n: number): number {
  switch (dtype) {
    case "f32":
    case "i32": // index lists
      return 4 * n;
    case "u8": // byte maps (KV-cache validity)
      return n;
    case "f16":
    case "bf16":
      return 2 * n;
    case "q8_0":
    case "q4_0":
      if (n % QK !== 0) throw new ShapeError(`${dtype} rows must be a multiple of ${QK} values, got ${n}`);
      return (n / QK) * (dtype === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES);
  }
}

/** Bytes of a tensor of this shape (rows along the innermost dimension). */
export function tensorBytes(dtype: DType, shape: readonly number[]): number {
  if (shape.length === 0) return rowBytes(dtype, 1);
  const inner = shape[shape.length - 1];
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return rows * rowBytes(dtype, inner);
}
