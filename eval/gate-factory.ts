// From a gate spec to a NeuronGate for a loaded model. Gates that need thresholds either read a calibration file
// (threshold:FILE) or are calibrated here on the given calibration tokens (cats, cett, cett-global); predictor
// gates read a file from dynact fit-predictors and keep its weights in the model's engine (see gateBytes).
import { DynactError, MemoryLimitError } from "../engine/errors";
import { readCalibration } from "../models/gates/calibration";
import type { NeuronGate } from "../models/gates/neuron-gate";
import { readPredictor, readPredictorHeader } from "../models/gates/predictor-file";
import { PredictorGate, predictorBytes } from "../models/gates/predictor-gate";
import { parseHeadGateSpec, topHeadsGate, type HeadGate, type HeadGateSpec } from "../models/gates/head-gate";
import { HeadPredictorGate } from "../models/gates/head-predictor-gate";
import { PromptGate } from "../models/gates/prompt-gate";
import { formatGateSpec, type GateSpec } from "../models/gates/spec";
import { ThresholdGate } from "../models/gates/threshold-gate";
import { TopkGate } from "../models/gates/topk-gate";
import type { LlamaModel } from "../models/llama";
import { calibrate, type CalibrateOptions } from "./calibrate";
import { calibrateTeal } from "./teal";
import type { TealSparsifier } from "../models/teal";

export interface GateFactoryOptions extends CalibrateOptions {
  /** Token ids to calibrate cats/cett gates on. */
  calibrationIds?: () => number[];
}

export function buildNeuronGate(spec: GateSpec, model: LlamaModel, opts: GateFactoryOptions = {}): NeuronGate | null {
  switch (spec.kind) {
    case "dense":
    case "teal": // input sparsity, not a neuron gate: see buildTeal
      return null;
    case "topk":
      return new TopkGate(`topk:${spec.keep}`, spec.keep, model.config.hiddenDim);
    case "griffin":
      return new PromptGate(formatGateSpec(spec), { kind: "griffin", keep: spec.keep }, model.config.nLayers, model.config.hiddenDim);
    case "tda":
      return new PromptGate(formatGateSpec(spec), { kind: "tda", relative: spec.relative }, model.config.nLayers, model.config.hiddenDim);
    case "threshold": {
      const c = readCalibration(spec.file, model);
      return new ThresholdGate(c.gate, c.score, c.thresholds, c.score === "act-downnorm" ? model.downNorms() : null);
    }
    case "cats":
    case "cett":
    case "cett-global": {
      if (!opts.calibrationIds) {
        throw new DynactError(
          `--ffn-gate ${formatGateSpec(spec)}: this gate needs calibration: pass --calib-text FILE, or run 'dynact calibrate' once and use threshold:FILE`,
        );
      }
      const c = calibrate(model, opts.calibrationIds(), spec, opts);
      return new ThresholdGate(c.gate, c.score, c.thresholds, c.score === "act-downnorm" ? model.downNorms() : null);
    }
    case "predictor": {
      const p = readPredictor(spec.file, model);
      if (p.header.units === "heads") throw new DynactError(`${spec.file}: a head predictor: use it with --head-gate`);
      try {
        return new PredictorGate(formatGateSpec(spec), p, model, spec.keep);
      } catch (e) {
        if (!(e instanceof MemoryLimitError)) throw e;
        throw new DynactError(`${spec.file}: the predictor needs ${predictorBytes(p.header)} bytes of engine memory; ` +
          "load the model with reserveBytes: gateBytes(spec)");
      }
    }
  }
}

/** Engine bytes a gate keeps in the model's engine (a predictor's weights): pass as loadModel's reserveBytes. */
export function gateBytes(spec: GateSpec): number {
  return spec.kind === "predictor" ? predictorBytes(readPredictorHeader(spec.file)) : 0;
}

/** TEAL input sparsity for `teal:S` specs (calibrated on the calibration tokens); null for every other spec. */
export function buildTeal(spec: GateSpec, model: LlamaModel, opts: GateFactoryOptions = {}): TealSparsifier | null {
  if (spec.kind !== "teal") return null;
  if (!opts.calibrationIds) {
    throw new DynactError(`--ffn-gate ${formatGateSpec(spec)}: TEAL needs calibration: pass --calib-text FILE`);
  }
  return calibrateTeal(model, opts.calibrationIds(), spec.sparsity, { ctx: opts.ctx });
}

/** Head gate specs: dense, topk:F, norm:F, predictor:FILE[:topk:F] (default: the fraction it was fitted for). */
export function buildHeadGate(spec: string, model: LlamaModel): HeadGate | null {
  const p = parseSpec(spec);
  if (p.kind !== "predictor") return topHeadsGate(spec, model.config.nHeads, p);
  const predictor = readPredictor(p.file, model);
  const keep = p.keep ?? Number(predictor.header.label.split(":")[1]);
  return new HeadPredictorGate(spec, predictor, model, keep);
}

/** Engine bytes a head gate keeps in the model's engine: pass (with gateBytes) as loadModel's reserveBytes. */
export function headGateBytes(spec: string): number {
  const p = parseSpec(spec);
  return p.kind === "predictor" ? predictorBytes(readPredictorHeader(p.file)) : 0;
}

function parseSpec(spec: string): HeadGateSpec {
  try {
    return parseHeadGateSpec(spec);
  } catch (e) {
    throw new DynactError((e as Error).message);
  }
}
