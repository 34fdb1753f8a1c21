// From a gate spec to a NeuronGate for a loaded model. Gates that need thresholds either read a calibration file
// (threshold:FILE) or are calibrated here on the given calibration tokens (cats, cett, cett-global).
import { DynactError } from "../engine/errors";
import { readCalibration } from "../models/gates/calibration";
import type { NeuronGate } from "../models/gates/neuron-gate";
import { PromptGate } from "../models/gates/prompt-gate";
import { formatGateSpec, type GateSpec } from "../models/gates/spec";
import { ThresholdGate } from "../models/gates/threshold-gate";
import { TopkGate } from "../models/gates/topk-gate";
import type { LlamaModel } from "../models/llama";
import { calibrate, type CalibrateOptions } from "./calibrate";

export interface GateFactoryOptions extends CalibrateOptions {
  /** Token ids to calibrate cats/cett gates on. */
  calibrationIds?: () => number[];
}

export function buildNeuronGate(spec: GateSpec, model: LlamaModel, opts: GateFactoryOptions = {}): NeuronGate | null {
  switch (spec.kind) {
    case "dense":
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
  }
}
