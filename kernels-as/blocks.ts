// Block layouts of the quantized types in one place (as ggml's ggml-common.h), and the f16/bf16 -> f32
// conversions the kernels share. engine/dtype.ts mirrors these numbers on the TypeScript side.
//
// A block covers QK consecutive values of a row and starts with its f16 scale d:
//   block_q8_0 { f16 d; i8 qs[32]; }  34 bytes, value j = d * qs[j]
//   block_q4_0 { f16 d; u8 qs[16]; }  18 bytes, value j = d * ((qs[j] & 15) - 8),
//                                               value j + 16 = d * ((qs[j] >> 4) - 8)
// Blocks are packed (34 and 18 are not multiples of 4), so scales and quants are read with unaligned loads.

@inline export const QK: i32 = 32;
@inline export const Q8_0_BLOCK_BYTES: usize = 34;
@inline export const Q4_0_BLOCK_BYTES: usize = 18;
/** Bytes per block of 32 of a quantized activation (matvec_quant.ts quantize_act_q8_0 / _q4_0: i16 quants, f32 scale, i32 offset for Q4_0). */
@inline export const ACT_BLOCK_BYTES: usize = 72;
/** Byte offset of qs within a block (after the f16 scale). */
@inline export const QS: usize = 2;

// f16 bits -> f32, exact for every input: subnormals, ±inf, NaN (payload kept). The branch-free method of
// Maratyszcza's FP16 library (ggml's portable path), which never does arithmetic on subnormal f32 values:
// x86 takes a slow microcode assist on those. Normal values are rebiased by an exponent offset and a
// multiplication by 2^-112 (inf/NaN saturate to exponent 255 and stay inf/NaN); subnormals are built as
// 0.5 + m·2^-24 and have 0.5 subtracted.
@inline export function f16_to_f32(h: u32): f32 {
  const w = h << 16;
  const twoW = w + w;
  const normal = reinterpret<f32>((twoW >> 4) + (0xe0 << 23)) * reinterpret<f32>(0x07800000);
  const subnormal = reinterpret<f32>((twoW >> 17) | (126 << 23)) - <f32>0.5;
  return reinterpret<f32>((w & 0x80000000) | reinterpret<u32>(twoW < (1 << 27) ? subnormal : normal));
}

// The same conversion on four f16 held in the upper halves of the 32-bit lanes of w (lane = h << 16, which is
// what interleaving 8 halves with zeros gives, see widen_lo/widen_hi).
@inline export function f16x4_to_f32x4(w: v128): v128 {
  const twoW = i32x4.add(w, w);
  const t = i32x4.shr_u(twoW, 4);
  const normal = f32x4.mul(i32x4.add(t, i32x4.splat(0xe0 << 23)), f32x4.splat(reinterpret<f32>(0x07800000)));
  const subnormal = f32x4.sub(v128.or(i32x4.shr_u(twoW, 17), i32x4.splat(126 << 23)), f32x4.splat(0.5));
  // t < 2^23 <=> exponent field 0; t is non-negative, so a signed compare (one instruction on x86) does.
  const isSub = i32x4.lt_s(t, i32x4.splat(1 << 23));
  return v128.or(v128.and(w, i32x4.splat(<i32>0x80000000)), v128.bitselect(subnormal, normal, isSub));
}

// The same for halves known to be normal (exponent field 1-30): the arithmetic shift puts exponent and mantissa
// at f32's place with the sign replicated into bits 30-28, the mask clears those, and an integer add rebiases
// the exponent by 127 - 15. Three operations instead of fifteen.
@inline export function f16x4_normal_to_f32x4(w: v128): v128 {
  return i32x4.add(v128.and(i32x4.shr_s(w, 3), i32x4.splat(<i32>0x8fffffff)), i32x4.splat(112 << 23));
}

// The low (widen_lo) or high (widen_hi) four of eight 16-bit values as 32-bit lanes holding value << 16:
// one interleave with zeros (punpcklwd / punpckhwd). For bf16 that is the f32 itself.
@inline export function widen_lo(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}
@inline export function widen_hi(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
}

@inline export function bf16_to_f32(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}

// f32 -> f16 bits, round to nearest even, overflow to ±inf, NaN to a quiet NaN (0x7e00 | sign): ggml's
// portable ggml_compute_fp32_to_fp16 (Maratyszcza's FP16), bit for bit as engine/quant.ts f32ToF16.
// |f|·2^112·2^-110 is inf where f16 overflows; adding a power of two whose f32 ulp is f16's ulp at f (the bias,
// floored at f16's subnormal ulp) makes f32's round-to-nearest-even round to f16's precision.
@inline export function f32_to_f16(f: f32): u32 {
  let base = (abs(f) * reinterpret<f32>(0x77800000)) * reinterpret<f32>(0x08800000);
  const w = reinterpret<u32>(f);
  const shl1W = w + w;
  let bias = shl1W & 0xff000000;
  if (bias < 0x71000000) bias = 0x71000000;
  base = reinterpret<f32>((bias >> 1) + 0x07800000) + base;
  const bits = reinterpret<u32>(base);
  const nonsign = ((bits >> 13) & 0x7c00) + (bits & 0x0fff);
  return ((w & 0x80000000) >> 16) | (shl1W > 0xff000000 ? 0x7e00 : nonsign);
}
