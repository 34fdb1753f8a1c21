// Encoding f32 values as the half-precision and quantized dtypes and back, in plain TypeScript: for format
// writers (GGUF, `dynact convert`) and as the tests' oracle. Bit for bit as ggml's reference code, so files we
// write match llama.cpp's and the wasm kernels' own quantization (kernels-as/matvec_quant.ts) matches ours.
import { QK, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, rowBytes, type DType } from "./dtype";
import { ShapeError } from "./errors";
import type { Tensor } from "./tensor";

// Bit casts between f32 and u32.
const castF32 = new Float32Array(1);
const castU32 = new Uint32Array(castF32.buffer);
function bitsOf(x: number): number {
  castF32[0] = x;
  return castU32[0];
}
function fromBits(bits: number): number {
  castU32[0] = bits;
  return castF32[0];
}

/**
 * f16 bits of x (rounded to f32 first): round to nearest even, overflow to ±inf, NaN to the quiet NaN 0x7e00
 * with x's sign. ggml's portable ggml_compute_fp32_to_fp16; for every non-NaN input also numpy's and F16C's.
 */
export function f32ToF16(x: number): number {
  const w = bitsOf(x);
  const shl1W = (w << 1) >>> 0;
  // |x|·2^112·2^-110 is inf where f16 overflows; adding a power of two whose f32 ulp is f16's ulp at x (the
  // bias, floored at f16's subnormal ulp) makes f32's round-to-nearest-even round to f16's precision.
  let base = Math.fround(Math.fround(Math.abs(fromBits(w)) * 2 ** 112) * 2 ** -110);
  const bias = Math.max((shl1W & 0xff000000) >>> 0, 0x71000000);
  base = Math.fround(fromBits((bias >>> 1) + 0x07800000) + base);
  const bits = bitsOf(base);
  const nonsign = ((bits >>> 13) & 0x7c00) + (bits & 0x0fff);
  return ((w >>> 16) & 0x8000) | (shl1W > 0xff000000 ? 0x7e00 : nonsign);
}

/** The value of f16 bits h: exact (subnormals, ±inf; NaN payloads are not kept by JS numbers). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** bf16 bits of x (rounded to f32 first): round to nearest even, NaN kept quiet; ggml's ggml_compute_fp32_to_bf16. */
export function f32ToBf16(x: number): number {
  const w = bitsOf(x);
  if ((w & 0x7fffffff) > 0x7f800000) return (w >>> 16) | 0x40;
  return Math.floor((w + 0x7fff + ((w >>> 16) & 1)) / 65536);
}

/** The value of bf16 bits h: the upper half of an f32. */
export function bf16ToF32(h: number): number {
  return fromBits((h << 16) >>> 0);
}

// ggml's id = d ? 1/d : 0, and 0 also where 1/d overflows f32 (|d| < 2^-128: d is 0 in f16 anyway). There
// the C code converts ±inf to int8, which is undefined; zero quants (q4: 8) are the defined choice, the same in
// the kernels.
function inverse(d: number): number {
  const inv = Math.fround(1 / d);
  return Number.isFinite(inv) ? inv : 0;
}

// C's roundf: ties away from zero (Math.round rounds ties up).
function roundAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

/** Q8_0 blocks of x (length a multiple of 32), as ggml's quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = rowBytes("q8_0", x.length) / Q8_0_BLOCK_BYTES;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const q = new Int8Array(out.buffer);
  for (let b = 0; b < nb; b++) {
    const block = x.subarray(b * QK, (b + 1) * QK);
    let amax = 0;
    for (const v of block) amax = Math.max(amax, Math.abs(v));
    const d = Math.fround(amax / 127);
    const id = inverse(d);
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(d), true);
    for (let j = 0; j < QK; j++) q[at + 2 + j] = roundAway(Math.fround(block[j] * id));
  }
  return out;
}

/**
 * Q4_0 blocks of x (length a multiple of 32), as ggml's quantize_row_q4_0_ref: d = max/-8 with max the value of
 * largest magnitude (sign kept), q = min(15, trunc(x/d + 8.5)), value j in the low nibble of byte j and value
 * j + 16 in its high nibble.
 */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = rowBytes("q4_0", x.length) / Q4_0_BLOCK_BYTES;
  const out = new Uint8Array(nb * Q4_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const block = x.subarray(b * QK, (b + 1) * QK);
    let amax = 0;
    let max = 0;
    for (const v of block) {
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = inverse(d);
    const at = b * Q4_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(d), true);
    const nibble = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
    for (let j = 0; j < QK / 2; j++) out[at + 2 + j] = nibble(block[j]) | (nibble(block[j + QK / 2]) << 4);
  }
  return out;
}

/** x encoded as dtype (the inverse of dequantize up to that dtype's rounding). */
export function quantize(dtype: DType, x: Float32Array): Uint8Array {
  switch (dtype) {
    case "f32":
      return new Uint8Array(Float32Array.from(x).buffer);
    case "f16":
      return new Uint8Array(Uint16Array.from(x, f32ToF16).buffer);
    case "bf16":
      return new Uint8Array(Uint16Array.from(x, f32ToBf16).buffer);
    case "q8_0":
      return quantizeQ8_0(x);
    case "q4_0":
      return quantizeQ4_0(x);
    case "i32":
    case "u8":
      throw new ShapeError(`quantize: ${dtype} is not a float dtype`);
  }
}

/** The n values stored in `bytes` as dtype (little-endian, ggml's block layouts). */
export function dequantize(dtype: DType, bytes: Uint8Array, n: number): Float32Array {
  if (dtype === "i32" || dtype === "u8") throw new ShapeError(`dequantize: ${dtype} is not a float dtype`);
  const need = rowBytes(dtype, n);
  if (bytes.length < need) throw new ShapeError(`dequantize: ${n} ${dtype} values need ${need} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, need);
  const out = new Float32Array(n);
  switch (dtype) {
    case "f32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case "f16":
      for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
      break;
    case "bf16":
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(2 * i, true));
      break;
    case "q8_0":
      for (let b = 0; b < n / QK; b++) {
        const at = b * Q8_0_BLOCK_BYTES;
        const d = f16ToF32(view.getUint16(at, true));
        for (let j = 0; j < QK; j++) out[b * QK + j] = d * view.getInt8(at + 2 + j);
      }
      break;
    case "q4_0":
      for (let b = 0; b < n / QK; b++) {
        const at = b * Q4_0_BLOCK_BYTES;
        const d = f16ToF32(view.getUint16(at, true));
        for (let j = 0; j < QK / 2; j++) {
          const q = view.getUint8(at + 2 + j);
          out[b * QK + j] = d * ((q & 15) - 8);
          out[b * QK + j + QK / 2] = d * ((q >> 4) - 8);
        }
      }
      break;
  }
  return out;
}

/** A 2-D tensor's values as f32: its own memory when it is f32 (a view, not a copy), else decoded. */
export function matrixValues(m: Tensor): Float32Array {
  return m.dtype === "f32" ? m.f32() : dequantize(m.dtype, m.bytesView(), m.size);
}
