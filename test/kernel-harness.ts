// What the kernel property tests share: tensors placed at random offsets in scratch slots with sentinels around
// them, comparisons with error bounds or bit identity, and the size, value and row-range generators.
// Tolerances are in units of U = 2^-24, the unit roundoff of round-to-nearest f32.
import fc from "fast-check";
import { Engine } from "../engine/engine";
import type { DType } from "../engine/dtype";
import { Tensor } from "../engine/tensor";

export const U = 2 ** -24;
/** The smallest subnormal f32: results that underflow are off by at most a few of these. */
export const TINY = 2 ** -149;

// The arena never frees, so every run places its tensors in a few slots allocated once (per test file: vitest
// isolates modules per file). EXTRA leaves room for a file's own allocations, such as op scratch.
const SLOTS = 6;
const SLOT_BYTES = 1 << 20;
const EXTRA = 1 << 16;
/** Bytes after each tensor (and between its slot's 64-byte-aligned start and it) that a kernel must leave alone. */
const GUARD_BYTES = 64;
export const SENTINEL = 0x7fa5a5a5; // a NaN payload no kernel computes
const SENTINEL_BYTES = new Uint8Array(Uint32Array.of(SENTINEL).buffer);

let slots: { engine: Engine; base: number[] } | undefined;

function getSlots(): { engine: Engine; base: number[] } {
  if (!slots) {
    const engine = Engine.create(SLOTS * (SLOT_BYTES + 64) + EXTRA);
    slots = { engine, base: Array.from({ length: SLOTS }, () => engine.tensor([SLOT_BYTES / 4]).offset) };
  }
  return slots;
}

/** The engine the slots live in. */
export function harnessEngine(): Engine {
  return getSlots().engine;
}

export function bits(f: Float32Array): Uint32Array {
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/**
 * A `dtype` tensor in slot `slot`, `byteShift` bytes past the slot's 64-byte-aligned start (so loads and stores
 * are also tried unaligned), holding `data` (encoded bytes) or sentinels, with sentinels around it.
 */
export function placeBytes(
  slot: number, dtype: DType, shape: readonly number[], byteShift: number, data?: Uint8Array,
): Tensor {
  const { engine, base } = getSlots();
  const t = new Tensor(engine, dtype, shape, base[slot] + byteShift);
  if (byteShift + t.bytes + GUARD_BYTES > SLOT_BYTES) throw new Error("scratch slot too small");
  new Uint32Array(engine.memory.buffer, base[slot], Math.ceil((byteShift + t.bytes + GUARD_BYTES) / 4)).fill(SENTINEL);
  if (data) {
    if (data.length !== t.bytes) throw new Error(`${data.length} bytes for a tensor of ${t.bytes}`);
    t.bytesView().set(data);
  }
  return t;
}

/** An f32 tensor `shift` floats into slot `slot` (see placeBytes), holding `values` or sentinels. */
export function place(slot: number, shape: readonly number[], shift: number, values?: ArrayLike<number>): Tensor {
  const t = placeBytes(slot, "f32", shape, 4 * shift);
  if (values) t.write(values);
  return t;
}

/** Throws unless the sentinels around t (placed by place/placeBytes) are intact. */
export function expectGuards(op: string, t: Tensor): void {
  const mem = new Uint8Array(t.engine.memory.buffer);
  const intact = (from: number, to: number): boolean => {
    for (let a = from; a < to; a++) if (mem[a] !== SENTINEL_BYTES[a & 3]) return false;
    return true;
  };
  if (!intact(t.offset - (t.offset % 64), t.offset) || !intact(t.offset + t.bytes, t.offset + t.bytes + GUARD_BYTES)) {
    throw new Error(`${op} wrote outside its output`);
  }
}

export function expectWithin(op: string, got: Float32Array, want: Float32Array, tol: (i: number) => number): void {
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol(i))) throw new Error(`${op}[${i}]: got ${got[i]}, want ${want[i]}, |err| ${err} > ${tol(i)}`);
  }
}

export function expectSameBits(op: string, got: Float32Array, want: Float32Array): void {
  const g = bits(got), w = bits(want);
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i]) throw new Error(`${op}[${i}]: got ${got[i]}, want bit-identical ${want[i]}`);
  }
}

// Sizes: the SIMD edge cases (around multiples of 4 and 8) often, anything up to `max` otherwise.
const EDGES = [1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257];
export const size = (max: number, min = 1): fc.Arbitrary<number> =>
  fc.oneof(fc.constantFrom(...EDGES.filter((n) => n >= min && n <= max)), fc.integer({ min, max }));
export const shift = fc.integer({ min: 0, max: 3 });

/** Activations/weights of realistic magnitude, with exact zeros (and fast-check's ±0, subnormals, ±4). */
export const real = fc.oneof(
  { weight: 6, arbitrary: fc.float({ min: -4, max: 4, noNaN: true }) },
  { weight: 1, arbitrary: fc.constant(0) },
);
/** Any finite f32: for kernels whose every output is one correctly rounded operation. */
export const anyFinite = fc.float({ noNaN: true, noDefaultInfinity: true });
export const vec = (n: number, value: fc.Arbitrary<number> = real): fc.Arbitrary<Float32Array> =>
  fc.array(value, { minLength: n, maxLength: n }).map((a) => Float32Array.from(a));

/** [start, end) ranges partitioning [0, n) at random cuts, plus one empty range, for ranged kernels. */
export const splits = (n: number): fc.Arbitrary<[number, number][]> =>
  fc.tuple(
    fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, n - 1) }), { maxLength: 4 }),
    fc.integer({ min: 0, max: n }),
  ).map(([cuts, empty]) => {
    const b = [0, ...cuts.filter((c) => c < n).sort((x, y) => x - y), n];
    return [...b.slice(1).map((end, i): [number, number] => [b[i], end]), [empty, empty]];
  });

/** Index sets over [0, n): empty, full, random ascending, and a contiguous run — what the sparse kernels meet. */
export const indexSet = (n: number): fc.Arbitrary<number[]> =>
  fc.oneof(
    fc.constant([] as number[]),
    fc.constant(Array.from({ length: n }, (_, i) => i)),
    fc.uniqueArray(fc.nat(n - 1), { maxLength: n }).map((a) => a.sort((x, y) => x - y)),
    fc.tuple(fc.nat(n - 1), fc.nat(n)).map(([s, len]) => Array.from({ length: Math.min(len, n - s) }, (_, i) => s + i)),
  );

/** An i32 tensor holding `idx` (at least one element long: kernels may be given an empty list). */
export function indexTensor(engine: Engine, idx: readonly number[], size: number): Tensor {
  const t = engine.tensor([Math.max(size, 1)], "i32");
  t.i32().set(idx);
  return t;
}
