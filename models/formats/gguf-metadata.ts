// GGUF metadata values and typed access to them. A value keeps its GGUF type so a file can be written back
// exactly; readers ask for the kind they need and get a FormatError naming the key when the file disagrees.
import { FormatError } from "./format-error";

/** GGUF value types, in the order of their ids (u8 = 0 … f64 = 12). */
export const GGUF_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

/** 64-bit integers stay bigints (exact); other numbers are JS numbers. */
export type GgufData = number | bigint | boolean | string | GgufArray;
export interface GgufArray {
  itemType: GgufType;
  items: GgufData[];
}
export interface GgufValue {
  type: GgufType;
  value: GgufData;
}
export type GgufMetadata = Map<string, GgufValue>;

const INTEGER_TYPES: ReadonlySet<GgufType> = new Set(["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"]);
const FLOAT_TYPES: ReadonlySet<GgufType> = new Set(["f32", "f64"]);

/** An integer value (any width), or `fallback` when absent. */
export function metaInt(meta: GgufMetadata, key: string, file: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined) return orMissing(fallback, file, key);
  if (!INTEGER_TYPES.has(v.type)) throw new FormatError(file, key, `is ${describe(v)}, expected an integer`);
  return Number(v.value); // a u64 beyond 2^53 becomes inexact, and every caller range-checks it anyway
}

/** A float (f32 or f64), or `fallback` when absent. */
export function metaFloat(meta: GgufMetadata, key: string, file: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined) return orMissing(fallback, file, key);
  if (!FLOAT_TYPES.has(v.type)) throw new FormatError(file, key, `is ${describe(v)}, expected a float`);
  return v.type === "f32" ? f32Decimal(v.value as number) : (v.value as number);
}

export function metaString(meta: GgufMetadata, key: string, file: string, fallback?: string): string {
  const v = meta.get(key);
  if (v === undefined) return orMissing(fallback, file, key);
  if (v.type !== "string") throw new FormatError(file, key, `is ${describe(v)}, expected a string`);
  return v.value as string;
}

/** The items of an array of `itemType`, or undefined when absent. */
export function metaArray(meta: GgufMetadata, key: string, itemType: GgufType, file: string): GgufData[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  const arr = v.value as GgufArray;
  if (v.type !== "array" || arr.itemType !== itemType) {
    throw new FormatError(file, key, `is ${describe(v)}, expected an array of ${itemType}`);
  }
  return arr.items;
}

function orMissing<T>(fallback: T | undefined, file: string, key: string): T {
  if (fallback === undefined) throw new FormatError(file, key, "missing");
  return fallback;
}

function describe(v: GgufValue): string {
  return v.type === "array" ? `an array of ${(v.value as GgufArray).itemType}` : `a ${v.type}`;
}

/**
 * The shortest decimal that rounds to the f32 `x`: GGUF stores hyperparameters as f32, and 1e-5 should read back
 * as 1e-5, not 0.000009999999747.
 */
export function f32Decimal(x: number): number {
  for (let digits = 1; digits < 10; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}
