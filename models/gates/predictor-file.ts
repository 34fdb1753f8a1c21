// Predictor files: per-layer low-rank activation predictors logits = W2·σ(W1·x + b1) + b2, tied to the model they
// were fitted on. Layout: one line of JSON (the header, padded with spaces so the data starts 4-byte aligned),
// then per layer the f32 little-endian values of W1 [rank×dim], b1 [rank], W2 [hidden×rank], b2 [hidden].
import { readFileSync, writeFileSync } from "node:fs";
import { DynactError } from "../../engine/errors";
import type { ActivationName } from "../config";
import { FormatError } from "../formats/format-error";
import type { LlamaModel } from "../llama";
import { modelFingerprint } from "./calibration";
import { parseLabelRule } from "./label-rule";

export type Sigma = "identity" | "relu";

/** Held-out accuracy of one layer's predictor (threshold mode: logit > 0) against its oracle labels. */
export interface LayerMetrics {
  recall: number;
  precision: number;
  f1: number;
  predicted_sparsity: number;
  oracle_sparsity: number;
  held_out_loss: number;
  epochs: number;
}

export interface PredictorHeader {
  format: "dynact-predictor";
  version: 1;
  model_fingerprint: string;
  text_fingerprint: string;
  /** The label rule the oracle sets follow, e.g. "cett:0.2". */
  label: string;
  /** cett labels: ε per layer on |act(g_i)|·‖W_down[:,i]‖ (null: keep every neuron); other rules: null. */
  label_thresholds: (number | null)[] | null;
  activation: ActivationName;
  sigma: Sigma;
  rank: number;
  dim: number;
  hidden: number;
  layers: number;
  /** Predictor l reads layer l-1's input (layer 0 its own): the set is known one layer ahead (DejaVu). */
  lookahead: boolean;
  /** What the logits choose: MLP neurons (absent: neurons, the first files) or attention heads. */
  units?: "neurons" | "heads";
  tokens: number;
  training: Record<string, number>;
  metrics: LayerMetrics[];
}

export interface Predictor {
  header: PredictorHeader;
  /** Per layer: W1, b1, W2, b2 concatenated. */
  weights: Float32Array[];
}

export const layerValues = (h: Pick<PredictorHeader, "rank" | "dim" | "hidden">): number =>
  h.rank * h.dim + h.rank + h.hidden * h.rank + h.hidden;

/** Multiply-adds of one predictor evaluation. */
export const predictorMacs = (h: Pick<PredictorHeader, "rank" | "dim" | "hidden">): number => h.rank * (h.dim + h.hidden);

export function writePredictor(file: string, p: Predictor): void {
  let json = JSON.stringify(p.header);
  json += " ".repeat((4 - ((Buffer.byteLength(json) + 1) % 4)) % 4);
  const head = Buffer.from(`${json}\n`);
  const data = Buffer.alloc(p.weights.length * layerValues(p.header) * 4);
  p.weights.forEach((w, l) => Buffer.from(w.buffer, w.byteOffset, w.byteLength).copy(data, l * w.byteLength));
  writeFileSync(file, Buffer.concat([head, data]));
}

/** The header alone (to size the engine before the model is loaded); checked for shape, not for the model. */
export function readPredictorHeader(file: string): PredictorHeader {
  return parse(file, read(file)).header;
}

/** Read a predictor file and check that it was fitted on this model. */
export function readPredictor(file: string, model: LlamaModel): Predictor {
  const { header, data } = parse(file, read(file));
  if (header.model_fingerprint !== modelFingerprint(model)) {
    throw new DynactError(`${file}: fitted for another model (fingerprint ${header.model_fingerprint}, activation ` +
      `${header.activation}; this model is ${model.config.activation})`);
  }
  // The fingerprint binds the file to the model, but the header's own sizes are what the gate allocates and loops by:
  // a header edited after fitting (or written by another tool) ran with a layer missing (a TypeError), with too many,
  // or with neurons that are not the model's.
  const c = model.config;
  const heads = header.units === "heads";
  const sizes = [["layers", c.nLayers, `the model has ${c.nLayers} layers`], ["dim", c.dim, `the model's dim is ${c.dim}`],
    ["hidden", heads ? c.nHeads : c.hiddenDim, heads ? `the model has ${c.nHeads} attention heads` : `the model's MLP has ${c.hiddenDim} neurons`]] as const;
  for (const [key, want, what] of sizes) {
    if (header[key] !== want) throw new FormatError(file, key, `${header[key]}, but ${what}`);
  }
  const n = layerValues(header);
  const values = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  return { header, weights: Array.from({ length: header.layers }, (_, l) => values.slice(l * n, (l + 1) * n)) };
}

function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new DynactError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

function parse(file: string, buf: Buffer): { header: PredictorHeader; data: Uint8Array } {
  const bad = (why: string) => new DynactError(`${file}: not a dynact predictor file (${why})`);
  const nl = buf.indexOf(10);
  if (nl < 0) throw bad("no header line");
  let h: PredictorHeader;
  try {
    h = JSON.parse(buf.subarray(0, nl).toString("utf8")) as PredictorHeader;
  } catch (e) {
    throw bad((e as Error).message.split("\n")[0]);
  }
  if (h?.format !== "dynact-predictor" || h.version !== 1) throw bad("wrong format or version");
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (![h.rank, h.dim, h.hidden, h.layers].every(posInt)) throw bad("rank, dim, hidden and layers must be positive integers");
  if (h.sigma !== "identity" && h.sigma !== "relu") throw bad(`unknown sigma '${String(h.sigma)}'`);
  if (h.units !== undefined && h.units !== "neurons" && h.units !== "heads") throw bad(`unknown units '${String(h.units)}'`);
  const rule = parseLabelRule(String(h.label));
  if (rule.kind === "cett" && !(Array.isArray(h.label_thresholds) && h.label_thresholds.length === h.layers)) {
    throw bad(`cett labels need ${h.layers} thresholds`);
  }
  if (!Array.isArray(h.metrics) || h.metrics.length !== h.layers) throw bad(`needs metrics for ${h.layers} layers`);
  const start = nl + 1;
  const expected = h.layers * layerValues(h) * 4;
  if (buf.length - start !== expected) throw bad(`${buf.length - start} bytes of weights, expected ${expected}`);
  // A fresh, aligned copy: Buffer's pool may place the data at an odd offset.
  return { header: h, data: new Uint8Array(buf.subarray(start)) };
}
