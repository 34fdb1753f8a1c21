// Neuron-gate specs as the CLI and the study write them: dense, cats:S, cett:T, cett-global:T, topk:F,
// threshold:FILE, griffin:F, tda:T, predictor:FILE[:topk:F].
import { DynactError } from "../../engine/errors";

export type GateSpec =
  | { kind: "dense" }
  | { kind: "cats"; sparsity: number }
  | { kind: "cett"; target: number }
  | { kind: "cett-global"; target: number }
  | { kind: "topk"; keep: number }
  | { kind: "threshold"; file: string }
  | { kind: "griffin"; keep: number }
  | { kind: "tda"; relative: number }
  | { kind: "teal"; sparsity: number }
  /** keep null: logit > 0; a fraction F: the top F of the logits. */
  | { kind: "predictor"; file: string; keep: number | null };

/** Gates whose per-layer thresholds are fitted on text (dynact calibrate; threshold:FILE reads what it writes). */
export const CALIBRATED_KINDS = ["cats", "cett", "cett-global"] as const;
export type CalibratedSpec = Extract<GateSpec, { kind: (typeof CALIBRATED_KINDS)[number] }>;

export function isCalibratedSpec(spec: GateSpec): spec is CalibratedSpec {
  return (CALIBRATED_KINDS as readonly string[]).includes(spec.kind);
}

export const GATE_KINDS =
  "dense, cats:S, cett:T, cett-global:T, topk:F, threshold:FILE, griffin:F, tda:T, teal:S, predictor:FILE, predictor:FILE:topk:F";

export function parseGateSpec(spec: string): GateSpec {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  const fraction = (what: string, lo: number, hi: number): number => {
    const v = arg === undefined || arg.trim() === "" ? NaN : Number(arg);
    if (!(v >= lo && v <= hi)) throw new DynactError(`--ffn-gate ${spec}: ${what} must be a number in [${lo}, ${hi}]`);
    return v;
  };
  switch (kind) {
    case "dense":
      if (arg !== undefined) break;
      return { kind };
    case "cats":
      return { kind, sparsity: fraction("the target sparsity", 0, 1) };
    case "cett":
    case "cett-global":
      return { kind, target: fraction("the CETT target", 0, 1) };
    case "topk":
      return { kind, keep: fraction("the kept fraction", 0, 1) };
    case "griffin":
      return { kind, keep: fraction("the kept fraction", 0, 1) };
    case "teal":
      return { kind, sparsity: fraction("the target input sparsity", 0, 1) };
    case "tda":
      return { kind, relative: fraction("the threshold relative to the top score", 0, 1) };
    case "threshold":
      if (!arg) throw new DynactError(`--ffn-gate ${spec}: threshold needs a calibration file: threshold:FILE`);
      return { kind, file: arg };
    case "predictor": {
      const top = arg ? /^(.+):topk:([^:]*)$/.exec(arg) : null;
      const file = top ? top[1] : arg;
      if (!file) throw new DynactError(`--ffn-gate ${spec}: predictor needs a predictor file: predictor:FILE[:topk:F]`);
      if (!top) return { kind, file, keep: null };
      const keep = top[2].trim() === "" ? NaN : Number(top[2]);
      if (!(keep > 0 && keep <= 1)) throw new DynactError(`--ffn-gate ${spec}: the kept fraction must be a number in (0, 1]`);
      return { kind, file, keep };
    }
  }
  throw new DynactError(`--ffn-gate ${spec}: unknown gate (known: ${GATE_KINDS})`);
}

export function formatGateSpec(s: GateSpec): string {
  switch (s.kind) {
    case "dense":
      return "dense";
    case "cats":
      return `cats:${s.sparsity}`;
    case "cett":
    case "cett-global":
      return `${s.kind}:${s.target}`;
    case "topk":
      return `topk:${s.keep}`;
    case "threshold":
      return `threshold:${s.file}`;
    case "griffin":
      return `griffin:${s.keep}`;
    case "tda":
      return `tda:${s.relative}`;
    case "teal":
      return `teal:${s.sparsity}`;
    case "predictor":
      return s.keep === null ? `predictor:${s.file}` : `predictor:${s.file}:topk:${s.keep}`;
  }
}
