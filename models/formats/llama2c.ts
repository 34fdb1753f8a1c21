// llama2.c checkpoints: the legacy v0 layout (7 int32 header; negative vocab_size = separate classifier) and
// the v1 layout ("ak42" magic, version 1, 256-byte header, f32). Reads the header and maps every weight to its
// file offset; the bytes themselves are read later, straight into engine memory.
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import type { Checkpoint, TensorEntry } from "../checkpoint";
import { canonicalShape } from "../checkpoint";
import { validateConfig, type LlamaConfig } from "../config";
import { FormatError } from "./format-error";
import { readSidecar, writeSidecar } from "./llama2c-sidecar";

const MAGIC = 0x616b3432; // "ak42"
const V1_HEADER_BYTES = 256;
const V0_HEADER_BYTES = 28;

export function readLlama2cCheckpoint(path: string): Checkpoint {
  const fd = openFile(path);
  try {
    const fileBytes = fstatSync(fd).size;
    const head = new Uint8Array(V1_HEADER_BYTES);
    const got = readSync(fd, head, 0, head.length, 0);
    const ckpt = parseLlama2cHeader(head.subarray(0, got), fileBytes, path);
    Object.assign(ckpt.config, readSidecar(path));
    return ckpt;
  } finally {
    closeSync(fd);
  }
}

/** Parse the header bytes of a llama2.c checkpoint whose whole file is `fileBytes` long. */
export function parseLlama2cHeader(head: Uint8Array, fileBytes: number, path: string): Checkpoint {
  if (head.length < V0_HEADER_BYTES) {
    throw new FormatError(path, "header", `file is ${fileBytes} bytes, shorter than a llama2.c header`);
  }
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let version: 0 | 1 = 0;
  let p = 0;
  if (dv.getUint32(0, true) === MAGIC) {
    if (head.length < V1_HEADER_BYTES) throw new FormatError(path, "header", "truncated v1 header");
    const v = dv.getInt32(4, true);
    if (v !== 1) {
      throw new FormatError(path, "version", `llama2.c version ${v} is not supported (only the f32 v0 and v1 layouts)`);
    }
    version = 1;
    p = 8;
  }
  const ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(p + 4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = ints;
  const shared = version === 1 ? head[p + 28] !== 0 : rawVocab > 0;
  if (version === 1 && head[p + 28] > 1) throw new FormatError(path, "shared_classifier", `flag is ${head[p + 28]}`);
  const config: LlamaConfig = {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), seqLen,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu",
  };
  validateConfig(config, path);
  // Sized in closed form first: a header's counts are untrusted until they agree with the file's length.
  const expected = (version === 1 ? V1_HEADER_BYTES : V0_HEADER_BYTES) + payloadBytes(config, shared, version);
  if (expected !== fileBytes) {
    throw new FormatError(path, "size",
      `header describes ${expected} bytes (dim ${dim}, hidden ${hiddenDim}, ${nLayers} layers, vocab ${config.vocabSize}, ` +
      `seq_len ${seqLen}) but the file has ${fileBytes}`);
  }
  const layout = version === 1 ? v1Layout(config, shared) : v0Layout(config, shared);
  const base = version === 1 ? V1_HEADER_BYTES : V0_HEADER_BYTES;
  const tensors = new Map<string, TensorEntry>();
  for (const e of layout.entries) tensors.set(e.name, { ...e, fileOffset: base + e.fileOffset });
  return { path, format: "llama2c", config, tensors };
}

/** Bytes after the header: the sum of every tensor in the layout (and v0's RoPE tables). */
export function payloadBytes(c: LlamaConfig, shared: boolean, version: 0 | 1): number {
  const kv = (c.dim / c.nHeads) * c.nKvHeads;
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
  const rope = version === 0 ? c.seqLen * (c.dim / c.nHeads) : 0;
  return 4 * (c.vocabSize * c.dim * (shared ? 1 : 2) + c.nLayers * perLayer + c.dim + rope);
}

interface Layout {
  entries: TensorEntry[];
  bytes: number;
}

// Builds entries in file order; `skip` adds unused bytes (llama2.c v0's precomputed RoPE tables).
function layoutBuilder(config: LlamaConfig) {
  const entries: TensorEntry[] = [];
  let offset = 0;
  return {
    add(name: string) {
      const shape = canonicalShape(config, name)!;
      entries.push({ name, dtype: "f32", shape, fileOffset: offset });
      offset += shape.reduce((a, b) => a * b, 1) * 4;
    },
    skip(bytes: number) {
      offset += bytes;
    },
    done: (): Layout => ({ entries, bytes: offset }),
  };
}

const perLayer = (c: LlamaConfig, kind: string) => Array.from({ length: c.nLayers }, (_, l) => `blk.${l}.${kind}`);

function v0Layout(c: LlamaConfig, shared: boolean): Layout {
  const b = layoutBuilder(c);
  b.add("token_embd");
  // v0 groups each kind across layers: all rms_att, all wq, …
  for (const kind of ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"]) {
    for (const name of perLayer(c, kind)) b.add(name);
  }
  b.add("output_norm");
  b.skip(2 * c.seqLen * (c.dim / c.nHeads / 2) * 4); // freq_cis_real, freq_cis_imag: unused, RoPE is computed
  if (!shared) b.add("output");
  return b.done();
}

function v1Layout(c: LlamaConfig, shared: boolean): Layout {
  const b = layoutBuilder(c);
  for (const name of [...perLayer(c, "attn_norm"), ...perLayer(c, "ffn_norm"), "output_norm", "token_embd"]) b.add(name);
  for (const kind of ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"]) {
    for (const name of perLayer(c, kind)) b.add(name);
  }
  if (!shared) b.add("output");
  return b.done();
}

/**
 * Write a llama2.c checkpoint. `tensor(name)` returns each canonical tensor's f32 data; `output` is written when
 * the model is untied. Tensors are written one at a time, so a model is never held twice in memory.
 */
export function writeLlama2cCheckpoint(
  path: string, config: LlamaConfig, tensor: (name: string) => Float32Array, opts: { version: 0 | 1; tied: boolean },
): void {
  validateConfig(config, path);
  // The header has no field for these, so a model with other values would read back as a different model.
  // (The activation and stage 2's ReLU after the norms go to a sidecar: llama2c-sidecar.ts.)
  const fixed = { ropeTheta: 10000, normEps: 1e-5, ropeScaling: undefined } as const;
  for (const [field, value] of Object.entries(fixed)) {
    const got = config[field as keyof typeof fixed];
    if (got !== value) throw new FormatError(path, field, `llama2.c files can only hold ${value ?? "none"}, got ${typeof got === "object" ? `${got.type} RoPE scaling` : JSON.stringify(got)}`);
  }
  // run.c skips v0's RoPE tables with `ptr += p->seq_len * head_size / 2`, a C int product: beyond it the file is
  // unreadable there (and a header's context of 2^24 positions, which nothing else in a GGUF or config.json bounds,
  // would be tables of 8 GiB for a model of a few KiB).
  const headSize = config.dim / config.nHeads;
  if (opts.version === 0 && config.seqLen * headSize > 2 ** 31 - 1) {
    throw new FormatError(path, "seq_len", `${config.seqLen} positions × head size ${headSize} overflow the C int run.c ` +
      "skips the legacy RoPE tables with (at most 2^31 - 1 values): no llama2.c file can hold this context");
  }
  const layout = opts.version === 1 ? v1Layout(config, opts.tied) : v0Layout(config, opts.tied);
  const fd = openSync(path, "w");
  try {
    const header = new DataView(new ArrayBuffer(opts.version === 1 ? V1_HEADER_BYTES : V0_HEADER_BYTES));
    let p = 0;
    if (opts.version === 1) {
      header.setUint32(0, MAGIC, true);
      header.setInt32(4, 1, true);
      p = 8;
    }
    const vocab = opts.version === 0 && !opts.tied ? -config.vocabSize : config.vocabSize;
    const ints = [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, vocab, config.seqLen];
    ints.forEach((v, i) => header.setInt32(p + 4 * i, v, true));
    if (opts.version === 1) header.setUint8(p + 28, opts.tied ? 1 : 0);
    writeSync(fd, new Uint8Array(header.buffer));
    let written = 0;
    for (const e of layout.entries) {
      if (e.fileOffset > written) writeRopeTablesV0(fd, config); // only v0 has a gap: its RoPE tables
      const data = tensor(e.name);
      const size = e.shape.reduce((a, b) => a * b, 1);
      if (data.length !== size) throw new FormatError(path, e.name, `expected ${size} values, got ${data.length}`);
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      written = e.fileOffset + size * 4;
    }
    if (layout.bytes > written) writeRopeTablesV0(fd, config);
  } finally {
    closeSync(fd);
  }
  writeSidecar(path, config);
}

// Values of the RoPE tables computed and written at once: the tables grow with the context, the memory does not.
export const ROPE_CHUNK_VALUES = 1 << 16;

// llama2.c's legacy freq_cis_real/imag tables, [seq_len, head_size/2] each, as its export wrote them (unused: run.c
// and our reader compute RoPE), a block of positions at a time.
function writeRopeTablesV0(fd: number, c: LlamaConfig): void {
  const half = c.dim / c.nHeads / 2;
  const period = Array.from({ length: half }, (_, j) => Math.pow(c.ropeTheta, (2 * j) / (2 * half)));
  const rows = Math.max(1, Math.floor(ROPE_CHUNK_VALUES / half));
  for (const f of [Math.cos, Math.sin]) {
    for (let start = 0; start < c.seqLen; start += rows) {
      const end = Math.min(c.seqLen, start + rows);
      const t = new Float32Array((end - start) * half);
      for (let pos = start; pos < end; pos++) {
        for (let j = 0; j < half; j++) t[(pos - start) * half + j] = f(pos / period[j]!);
      }
      writeSync(fd, new Uint8Array(t.buffer));
    }
  }
}

function openFile(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new FormatError(path, "file", (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e));
  }
}
