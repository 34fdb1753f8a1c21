// Hugging Face model folders: config.json + model.safetensors, or shards listed in model.safetensors.index.json.
// A safetensors file is an 8-byte little-endian header length, a JSON header (name → dtype, shape, data_offsets
// relative to the end of the header), then the data. We read only the headers here, check every offset against
// the file's size, and map HF names to canonical ones; W_q/W_k entries carry a `permute` note so the loader undoes
// HF's half-split row order (models/formats/hf-permute.ts).
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { tensorBytes, type DType } from "../../engine/dtype";
import { quantize } from "../../engine/quant";
import type { Checkpoint, TensorEntry } from "../checkpoint";
import { canonicalNames, canonicalShape, canonicalShapes } from "../checkpoint";
import { validateConfig, type LlamaConfig } from "../config";
import { brief, fieldName, FormatError, isObject } from "./format-error";
import { hfConfigJson, readHfConfig, type HfDType, type HfWriteOptions } from "./hf-config";
import { interleavedToHalfSplit } from "./hf-permute";

// The safetensors library refuses headers above 100 MB; so do we, before reading one.
const MAX_HEADER_BYTES = 100_000_000;
const ST_DTYPE: Readonly<Record<string, DType>> = { F32: "f32", F16: "f16", BF16: "bf16" };
const ST_NAME: Readonly<Record<HfDType, string>> = { f32: "F32", f16: "F16", bf16: "BF16" };

export interface SafetensorsTensor {
  dtype: DType;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  bytes: number;
}

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parse the header of a safetensors file of `fileSize` bytes from `head`, its first bytes (at least the header). */
export function parseSafetensorsHeader(head: Uint8Array, fileSize: number, file: string): Map<string, SafetensorsTensor> {
  if (head.length < 8 || fileSize < 8) throw new FormatError(file, "header length", `file of ${fileSize} bytes has no 8-byte header length`);
  const claimed = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (claimed > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
    throw new FormatError(file, "header length", `${claimed} bytes: more than the file or the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(claimed);
  if (head.length < 8 + n) throw new FormatError(file, "header", `truncated: ${head.length - 8} of ${n} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(UTF8_STRICT.decode(head.subarray(8, 8 + n)));
  } catch (e) {
    throw new FormatError(file, "header", e instanceof SyntaxError ? `not JSON: ${e.message}` : "not valid UTF-8");
  }
  if (!isObject(json)) throw new FormatError(file, "header", "is not a JSON object");
  const dataOffset = 8 + n;
  const dataBytes = fileSize - dataOffset;
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [key, v] of Object.entries(json)) {
    if (key === "__metadata__") continue; // free-form strings (e.g. {"format": "pt"})
    const name = fieldName(key, "unnamed tensor");
    if (!isObject(v)) throw new FormatError(file, name, "is not a tensor description");
    const dtype = typeof v.dtype === "string" && Object.hasOwn(ST_DTYPE, v.dtype) ? ST_DTYPE[v.dtype] : undefined;
    if (!dtype) throw new FormatError(file, `${name} dtype`, `${brief(v.dtype)} is not supported; supported: F32, F16, BF16`);
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every(isIndex)) throw new FormatError(file, `${name} shape`, `${brief(shape)} is not a list of sizes`);
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      throw new FormatError(file, `${name} data_offsets`, `${brief(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes) {
      throw new FormatError(file, `${name} data_offsets`, `[${begin}, ${end}] is outside the ${dataBytes} data bytes`);
    }
    let values = 1;
    for (const d of shape as number[]) {
      values *= d;
      if (values > dataBytes) throw new FormatError(file, `${name} shape`, `[${shape.join(", ")}] cannot fit in the file`);
    }
    const bytes = tensorBytes(dtype, shape as number[]);
    if (bytes !== end - begin) {
      throw new FormatError(file, `${name} data_offsets`, `[${begin}, ${end}] spans ${end - begin} bytes, the ${dtype} shape needs ${bytes}`);
    }
    tensors.set(key, { dtype, shape: shape as number[], offset: dataOffset + begin, bytes });
  }
  const sorted = [...tensors].sort((a, b) => a[1].offset - b[1].offset);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    if (sorted[i]![1].offset < prev.offset + prev.bytes) {
      throw new FormatError(file, fieldName(sorted[i]![0], "unnamed tensor"), `data overlaps ${fieldName(prevName, "an unnamed tensor")}'s`);
    }
  }
  return tensors;
}

export function readSafetensorsHeader(file: string): Map<string, SafetensorsTensor> {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new FormatError(file, "file", (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e));
  }
  try {
    const size = fstatSync(fd).size;
    const len = new Uint8Array(8);
    const got = readSync(fd, len, 0, 8, 0);
    const claimed = got === 8 ? new DataView(len.buffer).getBigUint64(0, true) : 0n;
    // Read what the header claims only once that fits the file; the parser then reports exactly what is wrong.
    const n = claimed <= BigInt(Math.min(MAX_HEADER_BYTES, size - 8)) ? Number(claimed) : 0;
    const head = new Uint8Array(got + n);
    head.set(len.subarray(0, got));
    if (n > 0) readSync(fd, head, 8, n, 8);
    return parseSafetensorsHeader(head, size, file);
  } finally {
    closeSync(fd);
  }
}

// HF parameter names of a LlamaForCausalLM → canonical names.
const HF_GLOBAL: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "token_embd", "model.norm.weight": "output_norm", "lm_head.weight": "output",
};
const HF_LAYER: Readonly<Record<string, string>> = {
  input_layernorm: "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output", post_attention_layernorm: "ffn_norm", "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
};
const LAYER_NAME = /^model\.layers\.(0|[1-9]\d*)\.(.+)\.weight$/;
// Buffers some exports include: RoPE's inverse frequencies, which we compute (per layer in older transformers,
// once per model in newer ones).
const IGNORED = /^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/;

/** Canonical name of an HF parameter, null for one we ignore, undefined for one we do not know. */
export function canonicalName(hf: string): string | null | undefined {
  if (IGNORED.test(hf)) return null;
  if (Object.hasOwn(HF_GLOBAL, hf)) return HF_GLOBAL[hf];
  const m = LAYER_NAME.exec(hf);
  const kind = m && Object.hasOwn(HF_LAYER, m[2]!) ? HF_LAYER[m[2]!] : undefined;
  return kind ? `blk.${m![1]}.${kind}` : undefined;
}

export function hfName(canonical: string): string {
  for (const [hf, c] of Object.entries(HF_GLOBAL)) if (c === canonical) return hf;
  const [, layer, kind] = /^blk\.(\d+)\.(.+)$/.exec(canonical)!;
  const hfKind = Object.keys(HF_LAYER).find((k) => HF_LAYER[k] === kind)!;
  return `model.layers.${layer}.${hfKind}.weight`;
}

export interface Shard {
  file: string;
  tensors: Map<string, SafetensorsTensor>;
  /** From the index: the names this shard must hold (all of its tensors when there is no index). */
  listed?: Set<string>;
}

export function readSafetensorsCheckpoint(dir: string): Checkpoint {
  const { config, tied } = readHfConfig(path.join(dir, "config.json"));
  return safetensorsCheckpoint(dir, config, tied, readShards(dir));
}

function readShards(dir: string): Shard[] {
  const indexFile = path.join(dir, "model.safetensors.index.json");
  if (!existsSync(indexFile)) {
    const single = path.join(dir, "model.safetensors");
    if (!existsSync(single)) throw new FormatError(dir, "model.safetensors", "missing (and no model.safetensors.index.json)");
    return [{ file: single, tensors: readSafetensorsHeader(single) }];
  }
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexFile, "utf8"));
  } catch (e) {
    throw new FormatError(indexFile, "json", (e as Error).message);
  }
  const map = isObject(index) ? index.weight_map : undefined;
  if (!isObject(map)) throw new FormatError(indexFile, "weight_map", "missing or not an object");
  const listed = new Map<string, Set<string>>();
  for (const [name, shard] of Object.entries(map)) {
    // A shard is a file in this folder: no paths, so an index cannot point outside it.
    if (typeof shard !== "string" || !/^[^/\\]+$/.test(shard) || shard === "." || shard === "..") {
      throw new FormatError(indexFile, fieldName(name, "unnamed tensor"), `shard ${brief(shard)} is not a file name in the folder`);
    }
    if (!listed.has(shard)) listed.set(shard, new Set());
    listed.get(shard)!.add(name);
  }
  return [...listed].map(([shard, names]) => {
    const file = path.join(dir, shard);
    return { file, tensors: readSafetensorsHeader(file), listed: names };
  });
}

/** The checkpoint the shards' headers describe for this config (every check except reading the files). */
export function safetensorsCheckpoint(dir: string, config: LlamaConfig, tied: boolean, shards: Shard[]): Checkpoint {
  const tensors = new Map<string, TensorEntry>();
  for (const shard of shards) {
    for (const name of shard.listed ?? []) {
      if (!shard.tensors.has(name)) throw new FormatError(shard.file, fieldName(name, "unnamed tensor"), "listed in the index but not in this shard");
    }
    for (const [hf, t] of shard.tensors) {
      const field = fieldName(hf, "unnamed tensor");
      const name = canonicalName(hf);
      // Buffers we ignore are ignored whether or not the index lists them (older exports differ on that).
      if (name === null) continue;
      if (shard.listed && !shard.listed.has(hf)) throw new FormatError(shard.file, field, "not listed for this shard in the index");
      // With tie_word_embeddings, transformers re-ties lm_head to embed_tokens after loading, so a stored
      // lm_head.weight is never used: the classifier is the embedding even when the two differ.
      if (name === "output" && tied) continue;
      const want = name === undefined ? undefined : canonicalShape(config, name);
      if (name === undefined || !want) {
        throw new FormatError(shard.file, field, "unexpected tensor: not part of a LlamaForCausalLM of this config");
      }
      if (tensors.has(name)) throw new FormatError(shard.file, field, "appears twice");
      if (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i])) {
        // K/V rows follow num_key_value_heads, which defaults to num_attention_heads when absent: say which it was.
        const kv = /\.attn_[kv]$/.test(name) ? ` (num_key_value_heads ${config.nKvHeads})` : "";
        throw new FormatError(shard.file, field, `shape [${t.shape.join(", ")}] but config.json needs [${want.join(", ")}]${kv}`);
      }
      const entry: TensorEntry = { name, dtype: t.dtype, shape: t.shape, fileOffset: t.offset, file: shard.file };
      if (name.endsWith(".attn_q")) entry.permute = { heads: config.nHeads };
      if (name.endsWith(".attn_k")) entry.permute = { heads: config.nKvHeads };
      tensors.set(name, entry);
    }
  }
  for (const name of canonicalNames(config)) {
    if (!tensors.has(name) && !(name === "output" && tied)) {
      throw new FormatError(dir, hfName(name), name === "output" ? "missing (tie_word_embeddings is false)" : "missing");
    }
  }
  return { path: dir, format: "safetensors", config, tensors };
}

/**
 * Write a Hugging Face model folder: config.json and model.safetensors, with W_q/W_k rows in HF's half-split
 * order, as transformers would save this model. `tensor(name)` returns each canonical tensor's f32 values.
 */
export function writeSafetensors(
  dir: string, config: LlamaConfig, tensor: (name: string) => Float32Array, opts: HfWriteOptions,
): void {
  validateConfig(config, dir);
  const json = hfConfigJson(config, opts, dir);
  const layout: { name: string; shape: number[]; begin: number; end: number }[] = [];
  let offset = 0;
  for (const [name, shape] of canonicalShapes(config)) {
    if (name === "output" && opts.tied) continue;
    const bytes = tensorBytes(opts.dtype, shape);
    layout.push({ name, shape, begin: offset, end: offset + bytes });
    offset += bytes;
  }
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  for (const t of layout) header[hfName(t.name)] = { dtype: ST_NAME[opts.dtype], shape: t.shape, data_offsets: [t.begin, t.end] };
  // Padded with spaces to a multiple of 8, as the safetensors library does, so the data stays aligned.
  let text = JSON.stringify(header);
  text += " ".repeat((8 - ((Buffer.byteLength(text) + 8) % 8)) % 8);
  const headBytes = Buffer.from(text, "utf8");
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(headBytes.length), true);

  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "config.json"), `${JSON.stringify(json, null, 2)}\n`);
  const file = path.join(dir, "model.safetensors");
  const fd = openSync(file, "w");
  try {
    writeSync(fd, len);
    writeSync(fd, headBytes);
    for (const t of layout) {
      const data = tensor(t.name);
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== size) throw new FormatError(file, t.name, `expected ${size} values, got ${data.length}`);
      const bytes = quantize(opts.dtype, data); // a new buffer (also for f32), so permuting in place is safe
      if (t.name.endsWith(".attn_q")) interleavedToHalfSplit(bytes, t.shape[0]!, config.nHeads);
      if (t.name.endsWith(".attn_k")) interleavedToHalfSplit(bytes, t.shape[0]!, config.nKvHeads);
      writeSync(fd, bytes);
    }
  } finally {
    closeSync(fd);
  }
}

const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
