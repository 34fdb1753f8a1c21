// Calibration files: per-layer thresholds for a threshold gate, tied to the model and the text they came from.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { DynactError } from "../../engine/errors";
import type { Tensor } from "../../engine/tensor";
import type { LlamaModel } from "../llama";
import type { ScoreKind } from "./threshold-gate";
import { matrixValues } from "../../engine/quant";

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
 * Identifies a model's weights cheaply: its config, every norm vector and the first row of every matrix, as values
 * (so the same weights stored transposed, as gather modes and head gates load them, give the same fingerprint).
 * W_down is left out: gather mode stores it transposed and, for quantized models, re-blocked along its other axis
 * (another rounding), and the other tensors already tell two models apart.
 */
export function modelFingerprint(model: LlamaModel): string {
  const h = createHash("sha256");
  const { config: c, weights: w } = model;
  h.update(JSON.stringify([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.activation]));
  const vector = (t: Tensor) => h.update(t.bytesView().subarray(0, 4096));
  h.update(row0(w.tokenEmbedding, false));
  for (const l of w.layers) {
    vector(l.attnNorm);
    const inT = l.inputsTransposed ?? false;
    [l.wq, l.wk, l.wv].forEach((m) => h.update(row0(m, inT)));
    h.update(row0(l.wo, l.woTransposed));
    vector(l.ffnNorm);
    [l.wGate, l.wUp].forEach((m) => h.update(row0(m, inT)));
  }
  vector(w.finalNorm);
  h.update(row0(w.output, false));
  return h.digest("hex").slice(0, 32);
}

/** The first 1024 values of a matrix's first row in its canonical [out, in] layout, whichever way it is stored. */
function row0(m: Tensor, transposed: boolean): Uint8Array {
  const [rows, cols] = m.shape;
  let row: Float32Array;
  if (transposed) {
    // Stored [in, out]: the canonical first row is the first column (a transposed W_o is f32 or f16).
    const w = matrixValues(m);
    row = Float32Array.from({ length: Math.min(1024, rows) }, (_, r) => w[r * cols]);
  } else {
    row = matrixValues(m.rows(0, 1)).slice(0, Math.min(1024, cols));
  }
  return new Uint8Array(row.buffer, row.byteOffset, row.byteLength);
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
