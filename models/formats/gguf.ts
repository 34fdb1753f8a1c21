// GGUF, llama.cpp's format (versions 2 and 3, little-endian): a header of typed metadata and tensor infos, then
// the aligned tensor data. The header is read piecewise from the file, and every count, length and offset in it
// is checked against the file's size before anything is sized from it; the weights are read later, straight
// into engine memory. llama.cpp is the reference for the semantics (gguf.cpp, llama-model.cpp).
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { isQuantized, QK, tensorBytes, type DType } from "../../engine/dtype";
import { quantize } from "../../engine/quant";
import type { Checkpoint, TensorEntry } from "../checkpoint";
import { canonicalNames, canonicalShape, canonicalShapes } from "../checkpoint";
import { headSize, validateConfig, type LlamaConfig } from "../config";
import { readTensorData, tensorSource } from "../weights";
import { llama3FreqFactors } from "../rope";
import { brief, fieldName, FormatError, withFileKeys } from "./format-error";
import {
  GGUF_TYPES, metaFloat, metaInt, metaString, type GgufArray, type GgufData, type GgufMetadata, type GgufType, type GgufValue,
} from "./gguf-metadata";
import { dynactMetadata, LLAMA3_FILE_KEYS, readDynactKeys } from "./gguf-dynact";
import { ggufTokenizer, ggufTokenizerMetadata, type GgufTokenizer } from "./gguf-tokenizer";

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_ALIGNMENT = 32; // llama.cpp's default when general.alignment is absent
// Bounds on what a header may claim, far above any real model but low enough that a lying header cannot make us
// allocate much: a string of 16 MiB (chat templates are KBs), 2^24 array items (vocabularies are < 2^18
// tokens, merge lists < 2^20), arrays nested 8 deep (real files nest none), 4 dims (ggml's maximum).
const MAX_STRING_BYTES = 1 << 24;
const MAX_ARRAY_ITEMS = 1 << 24;
const MAX_DEPTH = 8;
const MAX_DIMS = 4;
const WINDOW = 1 << 20; // header bytes read from the file per read

// Smallest encoding of a value of each type: how many items a count may claim in the bytes that are left.
const SCALAR_BYTES = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 } as const;
const MIN_BYTES: Record<GgufType, number> = { ...SCALAR_BYTES, string: 8, array: 12 };

/** The tensor types we read and write. */
export type GgufDType = Extract<DType, "f32" | "f16" | "bf16" | "q8_0" | "q4_0">;

/** ggml type ids of the tensor types we load. */
const GGML_DTYPE: Readonly<Record<number, GgufDType>> = { 0: "f32", 1: "f16", 2: "q4_0", 8: "q8_0", 30: "bf16" };
const GGML_ID: Readonly<Record<GgufDType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30 };
// Names of the ggml types we do not load, for the error message.
const GGML_OTHER: Readonly<Record<number, string>> = {
  3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
  16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
  24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};
const SUPPORTED = "F32, F16, BF16, Q8_0, Q4_0";

// general.file_type (llama_ftype) for a file whose weights are all of one dtype.
const FILE_TYPE: Readonly<Record<GgufDType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 };

export interface GgufTensorInfo {
  /** As stored: e.g. "blk.0.attn_q.weight". */
  name: string;
  dtype: GgufDType;
  /** Row-major, outermost first: the reverse of ggml's fastest-first dims. */
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: GgufMetadata;
  /** In file order of their data. */
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
}

/** Up to `length` bytes from `offset`; fewer only where the available bytes end. */
type ReadAt = (offset: number, length: number) => Uint8Array;

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Sequential little-endian reads over a window of the file, refilled as the header is walked. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer, 0, 0);
  private start = 0; // file offset of buf[0]

  constructor(private readonly readAt: ReadAt, readonly size: number, readonly file: string) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Index into buf of the next `n` bytes, which are consumed. */
  private take(n: number, field: string): number {
    if (n > this.size - this.pos) {
      throw new FormatError(this.file, field, `needs ${n} bytes at offset ${this.pos}, but the file ends at ${this.size}`);
    }
    let at = this.pos - this.start;
    if (at + n > this.buf.length) {
      this.buf = this.readAt(this.pos, Math.max(n, Math.min(WINDOW, this.size - this.pos)));
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.start = this.pos;
      at = 0;
      if (this.buf.length < n) throw new FormatError(this.file, field, `header truncated at offset ${this.pos + this.buf.length}`);
    }
    this.pos += n;
    return at;
  }

  // Each read takes its bytes before touching `view`: taking may replace the window.
  u8(field: string): number {
    const at = this.take(1, field);
    return this.buf[at]!;
  }
  u32(field: string): number {
    const at = this.take(4, field);
    return this.view.getUint32(at, true);
  }

  /** A u64 count, length, dim or offset, which must be an exact JS number. */
  count(field: string): number {
    const at = this.take(8, field);
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    if (hi >= 2 ** 21) throw new FormatError(this.file, field, `${(BigInt(hi) << 32n) | BigInt(lo)} is beyond any file size`);
    return hi * 2 ** 32 + lo;
  }

  scalar(type: Exclude<GgufType, "string" | "array" | "bool">, field: string): number | bigint {
    const at = this.take(SCALAR_BYTES[type], field);
    const v = this.view;
    switch (type) {
      case "u8": return v.getUint8(at);
      case "i8": return v.getInt8(at);
      case "u16": return v.getUint16(at, true);
      case "i16": return v.getInt16(at, true);
      case "u32": return v.getUint32(at, true);
      case "i32": return v.getInt32(at, true);
      case "f32": return v.getFloat32(at, true);
      case "u64": return v.getBigUint64(at, true);
      case "i64": return v.getBigInt64(at, true);
      case "f64": return v.getFloat64(at, true);
    }
  }

  string(field: string): string {
    const n = this.count(`${field} (string length)`);
    if (n > MAX_STRING_BYTES) throw new FormatError(this.file, field, `string of ${n} bytes is longer than ${MAX_STRING_BYTES}`);
    const at = this.take(n, field);
    try {
      return UTF8_STRICT.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new FormatError(this.file, field, "is not valid UTF-8");
    }
  }
}

/** Parse a GGUF header from `bytes`, the start of a file of `fileSize` bytes (at least the whole header). */
export function parseGgufHeader(bytes: Uint8Array, fileSize: number, file: string): GgufFile {
  return parseHeader(new Cursor((offset, length) => bytes.subarray(offset, offset + length), fileSize, file));
}

/** Read and check a GGUF file's header (metadata and tensor infos; no tensor data). */
export function readGgufFile(path: string): GgufFile {
  const fd = openFile(path);
  try {
    const readAt: ReadAt = (offset, length) => {
      const buf = new Uint8Array(length);
      let got = 0;
      for (let n = 1; got < length && n > 0; got += n) n = readSync(fd, buf, got, length - got, offset + got);
      return buf.subarray(0, got);
    };
    return parseHeader(new Cursor(readAt, fstatSync(fd).size, path));
  } finally {
    closeSync(fd);
  }
}

export function readGgufCheckpoint(path: string): Checkpoint {
  const g = readGgufFile(path);
  const ckpt = ggufCheckpoint(g, path);
  const t = g.tensors.find((x) => x.name === ROPE_FREQS);
  if (t) {
    // Read as any tensor is (ggufCheckpoint checked it is f32 [headSize/2]), outside the model's weights.
    const entry: TensorEntry = { name: ROPE_FREQS, shape: t.shape, dtype: "f32", fileOffset: t.offset };
    const divisors = readTensorData({ ...ckpt, tensors: new Map([[ROPE_FREQS, entry]]) }, ROPE_FREQS);
    const s = ckpt.config.ropeScaling;
    if (s?.type !== "llama3") {
      ckpt.config.ropeScaling = { type: "divisors", divisors };
      withFileKeys(path, { "ropeScaling.divisors": ROPE_FREQS }, () => validateConfig(ckpt.config, path));
    } else {
      // Our writer stores both forms: the parameters (exact) run the model, and must be what llama.cpp runs
      // (to f32 rounding: freq_base is stored as an f32, and the divisors were computed from the model's own).
      const want = llama3FreqFactors(headSize(ckpt.config), ckpt.config.ropeTheta, s);
      const off = want.findIndex((w, j) => !(Math.abs(w - divisors[j]!) <= 1e-6 * w));
      if (off >= 0) {
        throw new FormatError(path, ROPE_FREQS, `divisor ${off} is ${divisors[off]} but the dynact.rope.llama3 keys give ${want[off]}`);
      }
    }
  }
  return ckpt;
}

/** llama.cpp's tensor of RoPE frequency divisors (Llama 3.1/3.2 scaling): part of the config, not a weight. */
const ROPE_FREQS = "rope_freqs.weight";

/**
 * The tokenizer stored in a GGUF file's metadata: SentencePiece ("llama") or byte-level BPE ("gpt2"); for a model of
 * `vocabSize` tokens when given (another count is refused before the tokenizer is built).
 */
export function readGgufTokenizer(path: string, vocabSize?: number): GgufTokenizer {
  return ggufTokenizer(readGgufFile(path).metadata, path, vocabSize);
}

/** True when the file starts with the GGUF magic (false when unreadable: the format's reader then says why). */
export function isGguf(path: string): boolean {
  try {
    const fd = openSync(path, "r");
    try {
      const head = new Uint8Array(4);
      return readSync(fd, head, 0, 4, 0) === 4 && new DataView(head.buffer).getUint32(0, true) === MAGIC;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function parseHeader(c: Cursor): GgufFile {
  const file = c.file;
  if (c.u32("magic") !== MAGIC) throw new FormatError(file, "magic", "not a GGUF file");
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    // A big-endian file's version reads byte-swapped.
    const detail = version === 0x02000000 || version === 0x03000000 ? "big-endian files are not supported"
      : `GGUF version ${version} is not supported (only 2 and 3)`;
    throw new FormatError(file, "version", detail);
  }
  const nTensors = c.count("n_tensors");
  const nKv = c.count("n_kv");
  // Each entry takes at least its fixed fields: a tensor info 8 + 4 + 8 + 4 + 8 bytes, a key-value pair 8 + 4 + 1.
  if (nTensors * 32 > c.remaining) {
    throw new FormatError(file, "n_tensors", `${nTensors} tensor infos cannot fit in a ${c.size}-byte file`);
  }
  if (nKv * 13 + nTensors * 32 > c.remaining) {
    throw new FormatError(file, "n_kv", `${nKv} key-value pairs cannot fit in a ${c.size}-byte file`);
  }

  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`key ${i}`);
    const field = fieldName(key, `key ${i}`);
    if (metadata.has(key)) throw new FormatError(file, field, "duplicated key");
    const type = readType(c, field);
    metadata.set(key, { type, value: readValue(c, type, field, 0) });
  }

  const infos: RawInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor ${i} name`);
    const field = fieldName(name, `tensor ${i}`);
    if (names.has(name)) throw new FormatError(file, field, "duplicated tensor name");
    names.add(name);
    const nDims = c.u32(`${field} n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) throw new FormatError(file, `${field} n_dims`, `${nDims} is not 1..${MAX_DIMS}`);
    const ne = Array.from({ length: nDims }, () => c.count(`${field} dims`));
    const typeId = c.u32(`${field} type`);
    const dtype = GGML_DTYPE[typeId];
    if (dtype === undefined) {
      const known = GGML_OTHER[typeId];
      const what = known ? `${known} (ggml type ${typeId})` : `unknown ggml type ${typeId}`;
      throw new FormatError(file, `${field} type`, `${what} is not supported; supported: ${SUPPORTED}`);
    }
    infos.push({ name, field, ne, dtype, offset: c.count(`${field} offset`) });
  }

  const alignment = readAlignment(metadata, file);
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = infos.map((t) => tensorInfo(t, alignment, dataOffset, c.size, file));
  tensors.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < tensors.length; i++) {
    const prev = tensors[i - 1]!;
    if (tensors[i]!.offset < prev.offset + prev.bytes) {
      throw new FormatError(file, fieldName(tensors[i]!.name, "unnamed tensor"), `data overlaps ${fieldName(prev.name, "an unnamed tensor")}'s`);
    }
  }
  return { version, metadata, tensors, alignment, dataOffset };
}

function readType(c: Cursor, field: string): GgufType {
  const id = c.u32(`${field} (type)`);
  const type = GGUF_TYPES[id];
  if (type === undefined) throw new FormatError(c.file, field, `unknown value type ${id}`);
  return type;
}

function readValue(c: Cursor, type: GgufType, field: string, depth: number): GgufData {
  switch (type) {
    case "string":
      return c.string(field);
    case "bool": {
      const b = c.u8(field);
      if (b > 1) throw new FormatError(c.file, field, `bool byte is ${b}, not 0 or 1`);
      return b === 1;
    }
    case "array": {
      if (depth >= MAX_DEPTH) throw new FormatError(c.file, field, `arrays nested deeper than ${MAX_DEPTH}`);
      const itemType = readType(c, field);
      const n = c.count(`${field} (array length)`);
      if (n > MAX_ARRAY_ITEMS || n * MIN_BYTES[itemType] > c.remaining) {
        throw new FormatError(c.file, field, `array of ${n} ${itemType} cannot fit in the ${c.remaining} bytes left`);
      }
      const items: GgufData[] = [];
      for (let i = 0; i < n; i++) items.push(readValue(c, itemType, field, depth + 1));
      return { itemType, items } satisfies GgufArray;
    }
    default:
      return c.scalar(type, field);
  }
}

function readAlignment(metadata: GgufMetadata, file: string): number {
  const v = metadata.get("general.alignment");
  if (v === undefined) return GGUF_ALIGNMENT;
  // llama.cpp insists on a u32 power of two.
  if (v.type !== "u32") throw new FormatError(file, "general.alignment", `is a ${v.type}, expected a u32`);
  const a = v.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) throw new FormatError(file, "general.alignment", `${a} is not a power of two`);
  return a;
}

interface RawInfo {
  name: string;
  /** The name as error messages show it. */
  field: string;
  ne: number[];
  dtype: GgufDType;
  offset: number;
}

function tensorInfo(t: RawInfo, alignment: number, dataOffset: number, fileSize: number, file: string): GgufTensorInfo {
  // Every type takes at least 18/32 bytes per value, so a tensor of more than 2 values per byte cannot fit.
  let values = 1;
  for (const d of t.ne) {
    if (d === 0) throw new FormatError(file, `${t.field} dims`, `[${t.ne.join(", ")}] has a zero dimension`);
    values *= d;
    if (values > 2 * fileSize) throw new FormatError(file, `${t.field} dims`, `[${t.ne.join(", ")}] cannot fit in the file`);
  }
  if (isQuantized(t.dtype) && t.ne[0]! % QK !== 0) {
    throw new FormatError(file, `${t.field} dims`, `${t.dtype} rows must be a multiple of ${QK} values, got ${t.ne[0]}`);
  }
  const shape = [...t.ne].reverse();
  const bytes = tensorBytes(t.dtype, shape);
  if (t.offset % alignment !== 0) {
    throw new FormatError(file, `${t.field} offset`, `${t.offset} is not a multiple of the alignment ${alignment}`);
  }
  if (dataOffset + t.offset + bytes > fileSize) {
    throw new FormatError(file, `${t.field} offset`,
      `data at ${dataOffset} + ${t.offset} (${bytes} bytes) runs past the end of the ${fileSize}-byte file`);
  }
  return { name: t.name, dtype: t.dtype, shape, offset: dataOffset + t.offset, bytes };
}

// GGUF keys of LlamaConfig's fields, for validateConfig's messages (vocabSize is token_embd's row count).
const GGUF_KEYS: Readonly<Record<string, string>> = {
  dim: "llama.embedding_length", hiddenDim: "llama.feed_forward_length", nLayers: "llama.block_count",
  nHeads: "llama.attention.head_count", nKvHeads: "llama.attention.head_count_kv", vocabSize: "token_embd.weight",
  seqLen: "llama.context_length", ropeTheta: "llama.rope.freq_base", normEps: "llama.attention.layer_norm_rms_epsilon",
};

/** The llama model a GGUF header describes: config from the `llama.*` keys, tensors by canonical name. */
export function ggufCheckpoint(g: GgufFile, path: string): Checkpoint {
  const m = g.metadata;
  const arch = metaString(m, "general.architecture", path);
  if (arch !== "llama") throw new FormatError(path, "general.architecture", `${brief(arch)} is not supported (only llama)`);
  ropeScalingNone(m, path);
  const embedding = g.tensors.find((t) => t.name === "token_embd.weight");
  if (!embedding) throw new FormatError(path, "token_embd.weight", "tensor missing");
  const nHeads = metaInt(m, "llama.attention.head_count", path);
  const config: LlamaConfig = {
    dim: metaInt(m, "llama.embedding_length", path),
    hiddenDim: metaInt(m, "llama.feed_forward_length", path),
    nLayers: metaInt(m, "llama.block_count", path),
    nHeads,
    nKvHeads: metaInt(m, "llama.attention.head_count_kv", path, nHeads),
    vocabSize: embedding.shape[0]!,
    seqLen: metaInt(m, "llama.context_length", path),
    ropeTheta: metaFloat(m, "llama.rope.freq_base", path, 10000),
    normEps: metaFloat(m, "llama.attention.layer_norm_rms_epsilon", path),
    ...readDynactKeys(m, path),
  };
  withFileKeys(path, { ...GGUF_KEYS, ...LLAMA3_FILE_KEYS }, () => validateConfig(config, path));
  if (config.ropeScaling && !g.tensors.some((t) => t.name === ROPE_FREQS)) {
    // llama.cpp would run this file unscaled: its scaling lives in rope_freqs alone.
    throw new FormatError(path, ROPE_FREQS, "tensor missing (the dynact.rope.llama3 keys come with it)");
  }
  const ropeDims = metaInt(m, "llama.rope.dimension_count", path, headSize(config));
  if (ropeDims !== headSize(config)) {
    throw new FormatError(path, "llama.rope.dimension_count", `${ropeDims} differs from the head size ${headSize(config)} (partial RoPE is not supported)`);
  }
  // llama.cpp sizes heads by these keys (default embedding_length / head_count); another size is refused here by
  // name, rather than later by a tensor's shape or, for a file whose tensors still fit, not at all.
  for (const key of ["llama.attention.key_length", "llama.attention.value_length"]) {
    const n = metaInt(m, key, path, headSize(config));
    if (n !== headSize(config)) {
      throw new FormatError(path, key, `${n} differs from embedding_length / head_count = ${headSize(config)} (other head sizes are not supported)`);
    }
  }
  const vocab = metaInt(m, "llama.vocab_size", path, config.vocabSize);
  if (vocab !== config.vocabSize) {
    throw new FormatError(path, "llama.vocab_size", `${vocab} disagrees with token_embd's ${config.vocabSize} rows`);
  }

  const tensors = new Map<string, TensorEntry>();
  for (const t of g.tensors) {
    if (t.name === ROPE_FREQS) {
      const half = headSize(config) / 2;
      if (t.dtype !== "f32" || t.shape.length !== 1 || t.shape[0] !== half) {
        throw new FormatError(path, ROPE_FREQS, `${t.dtype} [${t.shape.join(", ")}]; expected f32 [${half}] (one divisor per RoPE frequency)`);
      }
      continue; // read with the header by readGgufCheckpoint: it is part of the config, not a weight
    }
    const name = t.name.endsWith(".weight") ? t.name.slice(0, -".weight".length) : t.name;
    const want = canonicalShape(config, name);
    if (!want || !t.name.endsWith(".weight")) {
      throw new FormatError(path, fieldName(t.name, "unnamed tensor"),
        "unexpected tensor: not part of a llama model (biases and experts are not supported)");
    }
    if (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i])) {
      // K/V rows follow head_count_kv, which defaults to head_count when absent: say which it was.
      const kv = !/\.attn_[kv]$/.test(name) ? ""
        : ` (llama.attention.head_count_kv ${config.nKvHeads}${m.has("llama.attention.head_count_kv") ? "" : ": absent, so head_count"})`;
      throw new FormatError(path, t.name, `shape [${t.shape.join(", ")}] but the config needs [${want.join(", ")}]${kv}`);
    }
    tensors.set(name, { name, dtype: t.dtype, shape: t.shape, fileOffset: t.offset });
  }
  for (const name of canonicalNames(config)) {
    if (name !== "output" && !tensors.has(name)) throw new FormatError(path, `${name}.weight`, "tensor missing");
  }
  return { path, format: "gguf", config, tensors };
}

/**
 * Refuse RoPE scaling as llama.cpp would apply it. It reads llama.rope.scaling.factor (or the older
 * llama.rope.scale_linear) and applies it as *linear* scaling when llama.rope.scaling.type is absent; only type
 * "none" turns a factor off. A factor of 0 or 1 scales nothing.
 */
function ropeScalingNone(m: GgufMetadata, path: string): void {
  const typeKey = "llama.rope.scaling.type";
  const type = metaString(m, typeKey, path, "linear");
  if (type === "none") return;
  const factorKey = m.has("llama.rope.scaling.factor") ? "llama.rope.scaling.factor" : "llama.rope.scale_linear";
  const factor = metaFloat(m, factorKey, path, 0);
  if (type !== "linear") throw new FormatError(path, typeKey, `RoPE scaling ${brief(type)} is not supported`);
  if (factor !== 0 && factor !== 1) {
    const implied = m.has(typeKey) ? "" : ` (llama.cpp's default when ${typeKey} is absent)`;
    throw new FormatError(path, factorKey, `${factor}: linear RoPE scaling${implied} is not supported`);
  }
}

export interface GgufWriteOptions {
  /** Type of the 2-D weights; norm vectors are always F32, as llama.cpp writes them. */
  dtype: GgufDType;
  tied: boolean;
  /** Stored as tokenizer.ggml.* metadata so the file is self-contained (byte-level BPE as a gpt2 tokenizer). */
  tokenizer?: GgufTokenizer;
}

export interface GgufWriteResult {
  /** Tensors written in another type than asked: quantized rows must be a multiple of 32 values (then F16). */
  fallbacks: { name: string; dtype: GgufDType; reason: string }[];
}

/**
 * Write a GGUF v3 file of a llama model. `tensor(name)` returns each canonical tensor's f32 values; they are
 * encoded and written one at a time, so a model is never held twice in memory.
 */
export function writeGguf(
  path: string, config: LlamaConfig, tensor: (name: string) => Float32Array, opts: GgufWriteOptions,
): GgufWriteResult {
  validateConfig(config, path);
  // Llama 3.1's scaling goes in as llama.cpp writes it: a rope_freqs tensor of frequency divisors.
  const s = config.ropeScaling;
  const freqs = s?.type === "divisors" ? s.divisors : s && llama3FreqFactors(headSize(config), config.ropeTheta, s);
  const fallbacks: GgufWriteResult["fallbacks"] = [];
  const layout: { name: string; shape: number[]; dtype: GgufDType; offset: number; bytes: number }[] = [];
  let offset = 0;
  if (freqs) {
    layout.push({ name: "rope_freqs", shape: [freqs.length], dtype: "f32", offset, bytes: 4 * freqs.length });
    offset = alignUp(4 * freqs.length, GGUF_ALIGNMENT);
  }
  for (const [name, shape] of canonicalShapes(config)) {
    if (name === "output" && opts.tied) continue;
    let dtype: GgufDType = shape.length === 1 ? "f32" : opts.dtype;
    if (isQuantized(dtype) && shape[shape.length - 1]! % QK !== 0) {
      fallbacks.push({ name, dtype: "f16", reason: `rows of ${shape[shape.length - 1]} values are not a multiple of ${QK}` });
      dtype = "f16";
    }
    const bytes = tensorBytes(dtype, shape);
    layout.push({ name, shape, dtype, offset, bytes });
    offset = alignUp(offset + bytes, GGUF_ALIGNMENT);
  }

  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const meta: [string, GgufValue][] = [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.alignment", u32(GGUF_ALIGNMENT)],
    ["general.file_type", u32(FILE_TYPE[opts.dtype])],
    ["llama.vocab_size", u32(config.vocabSize)],
    ["llama.context_length", u32(config.seqLen)],
    ["llama.embedding_length", u32(config.dim)],
    ["llama.block_count", u32(config.nLayers)],
    ["llama.feed_forward_length", u32(config.hiddenDim)],
    ["llama.attention.head_count", u32(config.nHeads)],
    ["llama.attention.head_count_kv", u32(config.nKvHeads)],
    ["llama.rope.dimension_count", u32(headSize(config))],
    ["llama.rope.freq_base", { type: "f32", value: config.ropeTheta }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: config.normEps }],
    ...dynactMetadata(config),
    ...(opts.tokenizer ? ggufTokenizerMetadata(opts.tokenizer) : []),
  ];

  const header = encodeGgufHeader(meta, layout.map((t) => ({ ...t, name: `${t.name}.weight` })));
  const fd = openSync(path, "w");
  try {
    writeSync(fd, header);
    writeSync(fd, new Uint8Array(alignUp(header.length, GGUF_ALIGNMENT) - header.length));
    let written = 0;
    for (const t of layout) {
      if (t.offset > written) writeSync(fd, new Uint8Array(t.offset - written));
      const data = t.name === "rope_freqs" ? freqs! : tensor(t.name);
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== size) throw new FormatError(path, t.name, `expected ${size} values, got ${data.length}`);
      writeSync(fd, quantize(t.dtype, data));
      written = t.offset + t.bytes;
    }
  } finally {
    closeSync(fd);
  }
  return { fallbacks };
}

/**
 * `ckpt` written as a GGUF whose matrices are `dtype` — what `dynact convert --to gguf --dtype` does: one tensor at
 * a time, dequantized to f32 when stored otherwise, then encoded.
 */
export function convertToGguf(ckpt: Checkpoint, out: string, dtype: GgufDType, tokenizer?: GgufTokenizer): GgufWriteResult {
  const { tied, tensor } = tensorSource(ckpt);
  return writeGguf(out, ckpt.config, tensor, { dtype, tied, tokenizer });
}

/**
 * A GGUF v3 header: metadata, then tensor infos (row-major shapes, stored fastest-first; offsets relative to the
 * data, which starts at the next multiple of the alignment).
 */
export function encodeGgufHeader(
  metadata: [string, GgufValue][], tensors: { name: string; shape: number[]; dtype: GgufDType; offset: number }[],
): Uint8Array {
  const h = new HeaderWriter();
  h.u32(MAGIC);
  h.u32(3);
  h.u64(tensors.length);
  h.u64(metadata.length);
  for (const [key, v] of metadata) {
    h.string(key);
    h.u32(GGUF_TYPES.indexOf(v.type));
    h.value(v.type, v.value);
  }
  for (const t of tensors) {
    h.string(t.name);
    h.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) h.u64(d);
    h.u32(GGML_ID[t.dtype]);
    h.u64(t.offset);
  }
  return h.bytes();
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

const UTF8 = new TextEncoder();

/** A growing little-endian buffer for the header. */
class HeaderWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private length = 0;

  /** Grow as needed, then let `write` fill `n` bytes through the (possibly new) view. */
  private put(n: number, write: (view: DataView, at: number) => void): void {
    if (this.length + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(2 * this.buf.length, this.length + n));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    write(this.view, this.length);
    this.length += n;
  }

  u32(v: number): void {
    this.put(4, (dv, at) => dv.setUint32(at, v, true));
  }
  u64(v: number | bigint): void {
    this.put(8, (dv, at) => dv.setBigUint64(at, BigInt(v), true));
  }
  string(s: string): void {
    const b = UTF8.encode(s);
    this.u64(b.length);
    this.put(b.length, (_, at) => this.buf.set(b, at));
  }

  value(type: GgufType, v: GgufData): void {
    switch (type) {
      case "u8": return this.put(1, (dv, at) => dv.setUint8(at, v as number));
      case "i8": return this.put(1, (dv, at) => dv.setInt8(at, v as number));
      case "bool": return this.put(1, (dv, at) => dv.setUint8(at, v ? 1 : 0));
      case "u16": return this.put(2, (dv, at) => dv.setUint16(at, v as number, true));
      case "i16": return this.put(2, (dv, at) => dv.setInt16(at, v as number, true));
      case "u32": return this.u32(v as number);
      case "i32": return this.put(4, (dv, at) => dv.setInt32(at, v as number, true));
      case "f32": return this.put(4, (dv, at) => dv.setFloat32(at, v as number, true));
      case "u64": return this.u64(v as bigint);
      case "i64": return this.put(8, (dv, at) => dv.setBigInt64(at, BigInt(v as bigint), true));
      case "f64": return this.put(8, (dv, at) => dv.setFloat64(at, v as number, true));
      case "string": return this.string(v as string);
      case "array": {
        const arr = v as GgufArray;
        this.u32(GGUF_TYPES.indexOf(arr.itemType));
        this.u64(arr.items.length);
        for (const item of arr.items) this.value(arr.itemType, item);
      }
    }
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function openFile(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new FormatError(path, "file", (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e));
  }
}
