// A training run's state on disk, to resume it exactly: the config (activation included), the options, the
// step, a fingerprint of the data, then the parameters and AdamW's two moments as f32.
// Layout: "DYNT", u32 version, u32 JSON byte length, the JSON, zero padding to a multiple of 4, then
// 3 × n f32 (parameters, first moments, second moments), little-endian.
import { closeSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { DynactError } from "../../engine/errors";
import { LLAMA3_PARAMETERS, parameterCount, validateConfig, type LlamaConfig } from "../config";
import { brief, FormatError, isObject, withFileKeys } from "../formats/format-error";
import type { TrainOptions, Trainer } from "./trainer";

const MAGIC = "DYNT";
const VERSION = 1;

export interface TrainCheckpointMeta {
  config: LlamaConfig;
  tied: boolean;
  /** The next step to run. */
  step: number;
  options: TrainOptions;
  /** splitFingerprint of the text it was trained on. */
  data: string;
  /** Parameter count. */
  params: number;
}

export interface TrainCheckpoint {
  meta: TrainCheckpointMeta;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export function writeTrainCheckpoint(path: string, trainer: Trainer, data: string): void {
  const p = trainer.model.params;
  const meta: TrainCheckpointMeta = {
    config: p.config, tied: p.tied, step: trainer.step, options: trainer.opts, data, params: p.data.length,
  };
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(Math.ceil((12 + json.length) / 4) * 4);
  head.write(MAGIC, 0, "latin1");
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  const tmp = `${path}.${process.pid}.tmp`; // a crash mid-write leaves the last good checkpoint in place
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, head);
    for (const a of [Float32Array.from(p.data), trainer.opt.m, trainer.opt.v]) writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readTrainCheckpoint(path: string): TrainCheckpoint {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DynactError(`${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const bad = (why: string) => new DynactError(`${path}: not a dynact training checkpoint (${why})`);
  if (buf.length < 12 || buf.toString("latin1", 0, 4) !== MAGIC) throw bad("magic");
  if (buf.readUInt32LE(4) !== VERSION) throw bad(`version ${buf.readUInt32LE(4)}`);
  const jsonBytes = buf.readUInt32LE(8);
  if (12 + jsonBytes > buf.length) throw bad("truncated header");
  let meta: TrainCheckpointMeta;
  try {
    meta = JSON.parse(buf.toString("utf8", 12, 12 + jsonBytes));
  } catch {
    throw bad("header is not JSON");
  }
  checkMeta(meta, path);
  const start = Math.ceil((12 + jsonBytes) / 4) * 4;
  const n = meta.params;
  if (!Number.isInteger(n) || n <= 0 || buf.length !== start + 12 * n) throw bad(`size ${buf.length} does not match ${n} parameters`);
  // Copies, so the arrays are 4-byte aligned whatever Buffer's pool offset is.
  const f32 = (i: number) => new Float32Array(buf.buffer.slice(buf.byteOffset + start + 4 * n * i, buf.byteOffset + start + 4 * n * (i + 1)));
  return { meta, params: f32(0), m: f32(1), v: f32(2) };
}

// LlamaConfig's fields as the checkpoint's JSON names them, for validateConfig's messages.
const CONFIG_KEYS: Readonly<Record<string, string>> = Object.fromEntries(
  ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen", "ropeTheta", "normEps", "activation",
    "ropeScaling", "ropeScaling.divisors", ...LLAMA3_PARAMETERS.map((k) => `ropeScaling.${k}`)].map((k) => [k, `config.${k}`]));

/**
 * The header's config, flags and counts, checked before a model is built from them: the config sizes every buffer
 * of the training model, and it was used as found — 2^24 layers exhausted the heap, a missing config was a
 * TypeError, before the parameter count was compared with the model's. The options are checked by the command,
 * which holds their rules.
 */
function checkMeta(meta: unknown, path: string): asserts meta is TrainCheckpointMeta {
  if (!isObject(meta)) throw new FormatError(path, "header", `${brief(meta)} is not a JSON object`);
  const c = meta.config;
  if (!isObject(c)) throw new FormatError(path, "config", `${brief(c)} is not an object`);
  const config = c as unknown as LlamaConfig;
  readRopeScaling(config, path);
  withFileKeys(path, CONFIG_KEYS, () => validateConfig(config, path));
  if (c.reluAfterNorm !== undefined && typeof c.reluAfterNorm !== "boolean") {
    throw new FormatError(path, "config.reluAfterNorm", `${brief(c.reluAfterNorm)} is not a boolean`);
  }
  if (typeof meta.tied !== "boolean") throw new FormatError(path, "tied", `${brief(meta.tied)} is not a boolean`);
  const count = parameterCount(config, meta.tied);
  if (meta.params !== count) throw new FormatError(path, "params", `${brief(meta.params)}, but a model of its config has ${count}`);
  if (!Number.isSafeInteger(meta.step) || (meta.step as number) < 0) throw new FormatError(path, "step", `${brief(meta.step)} is not a step number`);
  if (!isObject(meta.options)) throw new FormatError(path, "options", `${brief(meta.options)} is not an object`);
  if (typeof meta.data !== "string") throw new FormatError(path, "data", `${brief(meta.data)} is not a fingerprint`);
}

/**
 * A checkpoint's RoPE scaling as JSON keeps it (divisors as an object keyed by index) back into the config's form;
 * validateConfig then checks its values.
 */
function readRopeScaling(c: LlamaConfig, path: string): void {
  const s = c.ropeScaling as unknown;
  if (s === undefined || s === null || typeof s !== "object") return; // validateConfig names what is wrong
  const r = s as Record<string, unknown>;
  if (r.type !== "divisors") return;
  const d = r.divisors;
  if (typeof d !== "object" || d === null) throw new FormatError(path, "config.ropeScaling.divisors", `${brief(d)} is not an object`);
  const values = Object.values(d as Record<string, unknown>);
  if (!Object.keys(d).every((k, j) => k === String(j)) || !values.every((v) => typeof v === "number")) {
    throw new FormatError(path, "config.ropeScaling.divisors", `${brief(d)} is not a list of numbers`);
  }
  c.ropeScaling = { type: "divisors", divisors: Float32Array.from(values as number[]) };
}

/** Put a checkpoint's parameters, moments and step into a trainer built for the same config. */
export function restoreTrainer(trainer: Trainer, ckpt: TrainCheckpoint): void {
  const p = trainer.model.params;
  if (ckpt.params.length !== p.data.length) throw new DynactError(`checkpoint has ${ckpt.params.length} parameters, the model ${p.data.length}`);
  p.data.set(ckpt.params);
  trainer.opt.m.set(ckpt.m);
  trainer.opt.v.set(ckpt.v);
  trainer.opt.t = ckpt.meta.step;
  trainer.step = ckpt.meta.step;
}
