// Calibration files: per-layer thresholds for a threshold gate, tied to the model and the text they came from.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { DynactError } from "../../engine/errors";
import type { Tensor } from "../../engine/tensor";
import type { LlamaModel } from "../llama";
import type { ScoreKind } from "./threshold-gate";

export interface Calibration {
  format: "dynact-calibration";
  version: 1;
  /** What the thresholds were fitted for, e.g. "cett:0.2". */
  gate: string;
  score: ScoreKind;
  thresholds: number[];
  model_fingerprint: string;
  text_fingerprint: string;
  tokens: number;
  /** Measured on the calibration text with these thresholds (mask mode). */
  measured: { active_fraction: number[]; cett: number[] };
}

/**
 * Identifies a model's weights cheaply: its config, every norm vector and the first 4 KiB of every matrix.
 * Two checkpoints of different training runs or formats with other weights differ here.
 */
export function modelFingerprint(model: LlamaModel): string {
  const h = createHash("sha256");
  const { config: c, weights: w } = model;
  h.update(JSON.stringify([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.activation]));
  const part = (t: Tensor) => h.update(t.bytesView().subarray(0, 4096));
  part(w.tokenEmbedding);
  for (const l of w.layers) {
    [l.attnNorm, l.wq, l.wk, l.wv].forEach(part);
    h.update(canonicalRow0(l.wo, l.woTransposed));
    [l.ffnNorm, l.wGate, l.wUp].forEach(part);
    h.update(canonicalRow0(l.wDown, l.downTransposed));
  }
  part(w.finalNorm);
  part(w.output);
  return h.digest("hex").slice(0, 32);
}

/** The first 1024 values of a matrix's first row in its canonical [out, in] layout, whichever way it is stored. */
function canonicalRow0(m: Tensor, transposed: boolean): Uint8Array {
  const w = m.f32();
  const inputs = transposed ? m.shape[0] : m.shape[1];
  const outputs = transposed ? m.shape[1] : m.shape[0];
  const row = Float32Array.from({ length: Math.min(1024, inputs) }, (_, c) => (transposed ? w[c * outputs] : w[c]));
  return new Uint8Array(row.buffer);
}

export function textFingerprint(ids: readonly number[]): string {
  return createHash("sha256").update(Int32Array.from(ids)).digest("hex").slice(0, 32);
}

export function writeCalibration(file: string, c: Calibration): void {
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
}

export function readCalibration(file: string, model: LlamaModel): Calibration {
  let c: Calibration;
  try {
    c = JSON.parse(readFileSync(file, "utf8")) as Calibration;
  } catch (e) {
    throw new DynactError(`${file}: not a readable calibration file (${(e as Error).message.split("\n")[0]})`);
  }
  if (c?.format !== "dynact-calibration" || c.version !== 1) throw new DynactError(`${file}: not a dynact calibration file`);
  if (c.score !== "act" && c.score !== "act-downnorm") throw new DynactError(`${file}: unknown score '${String(c.score)}'`);
  if (!Array.isArray(c.thresholds) || c.thresholds.length !== model.config.nLayers ||
    !c.thresholds.every((t) => typeof t === "number" || t === null)) {
    throw new DynactError(`${file}: needs ${model.config.nLayers} per-layer thresholds`);
  }
  if (c.model_fingerprint !== modelFingerprint(model)) {
    throw new DynactError(`${file}: calibrated for another model (fingerprint ${c.model_fingerprint})`);
  }
  // JSON has no -Infinity: a keep-everything layer is stored as null.
  c.thresholds = c.thresholds.map((t) => (t === null ? -Infinity : t));
  return c;
}
