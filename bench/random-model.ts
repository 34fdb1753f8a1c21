// Deterministic random-weight checkpoints for benchmarks: same seed, same bytes, so dynact and its native peers
// read identical weights. Written once into a cache folder and reused.
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { canonicalShapes } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { writeGguf, type GgufDType } from "../models/formats/gguf";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { readLlama2cTokenizer } from "../models/tokenizer/sentencepiece-bpe";

export function benchCacheDir(): string {
  const dir = process.env.DYNACT_BENCH_DIR ?? path.join(os.tmpdir(), "dynact-bench");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Uniform values in [-scale, scale) from a 32-bit xorshift stream seeded per tensor. */
function fillUniform(out: Float32Array, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

function nameSeed(name: string, seed: number): number {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

// Special tokens never win a greedy step: their classifier rows are zero (logit 0, below the maximum of
// thousands of random logits), so neither dynact nor llama2.c stops early at BOS/EOS on random weights.
const SPECIAL_TOKENS = 3;

/** Random weights of a given config: norms are 1, linears scaled by 1/sqrt(fan-in) so activations stay O(1). */
export function randomTensor(config: LlamaConfig, name: string, seed: number): Float32Array {
  const shape = canonicalShapes(config).get(name)!;
  const size = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 1) return new Float32Array(size).fill(1);
  const scale = name === "token_embd" ? 1 : 1 / Math.sqrt(shape[1]);
  const t = fillUniform(new Float32Array(size), nameSeed(name, seed), scale);
  if (name === "output") t.fill(0, 0, SPECIAL_TOKENS * shape[1]);
  return t;
}

/** Path of a llama2.c (v0, untied) checkpoint with random weights, written on first use. */
export function randomLlama2cModel(label: string, config: LlamaConfig, seed = 1): string {
  const file = path.join(benchCacheDir(), `${label}-seed${seed}.bin`);
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeLlama2cCheckpoint(tmp, config, (name) => randomTensor(config, name, seed), { version: 0, tied: false });
    renameSync(tmp, file);
  }
  return file;
}

/**
 * A llama2.c tokenizer.bin with `vocabSize` placeholder pieces: llama2.c's run.c needs one to start, and the
 * benchmark never decodes text. Pieces 3..258 are the byte tokens run.c expects.
 */
export function syntheticLlama2cTokenizer(vocabSize: number): string {
  const file = path.join(benchCacheDir(), `tokenizer-${vocabSize}.bin`);
  if (existsSync(file)) return file;
  const pieces = Array.from({ length: vocabSize }, (_, i) =>
    i === 0 ? "<unk>" : i === 1 ? "<s>" : i === 2 ? "</s>" : i < 259 ? `<0x${(i - 3).toString(16).toUpperCase().padStart(2, "0")}>` : `t${i}`);
  const maxLen = Math.max(...pieces.map((p) => p.length));
  const buf = Buffer.alloc(4 + pieces.reduce((n, p) => n + 8 + p.length, 0));
  let at = buf.writeInt32LE(maxLen, 0);
  for (const p of pieces) {
    at = buf.writeFloatLE(0, at);
    at = buf.writeInt32LE(p.length, at);
    at += buf.write(p, at, "latin1");
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, buf);
  renameSync(tmp, file);
  return file;
}

/** The same random weights as a GGUF of `dtype` (with the synthetic tokenizer, which llama.cpp needs to load it). */
export function randomGgufModel(label: string, config: LlamaConfig, dtype: GgufDType, seed = 1): string {
  const file = path.join(benchCacheDir(), `${label}-seed${seed}-${dtype}.gguf`);
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    const tokenizer = readLlama2cTokenizer(syntheticLlama2cTokenizer(config.vocabSize));
    writeGguf(tmp, config, (name) => randomTensor(config, name, seed), { dtype, tied: false, tokenizer });
    renameSync(tmp, file);
  }
  return file;
}
