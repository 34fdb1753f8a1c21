// Options that choose the MLP's activation, neuron gate and execution mode; shared by generate, perplexity and
// calibrate.
import type { AttentionStatsSummary } from "../models/attention";
import type { ActivationName } from "../models/config";
import type { FfnMode } from "../models/ffn";
import type { FfnStatsSummary } from "../models/ffn-stats";
import { KV_POLICIES, parseHeadGateSpec, type KvPolicy } from "../models/gates/head-gate";
import { CALIBRATED_KINDS, parseGateSpec, type GateSpec } from "../models/gates/spec";
import type { LoadedModel } from "../models/load";
import { buildHeadGate, buildNeuronGate, buildTeal, gateBytes, headGateBytes } from "../eval/gate-factory";
import { readTextTokens } from "../eval/text";
import { activationOption, isPosInt, number, options } from "./args";
import { progressText } from "./log";
import { UsageError } from "./usage-error";
import { DynactError } from "../engine/errors";

export const GATE_OPTIONS = {
  ...options("act"),
  "ffn-gate": { type: "string" },
  "ffn-mode": { type: "string" },
  "down-dtype": { type: "string" },
  "calib-text": { type: "string" },
  "calib-tokens": { type: "string" },
  "head-gate": { type: "string" },
  "kv-policy": { type: "string" },
} as const;

export const GATE_HELP = `      --act NAME          silu, relu, relu2 or gelu: replace the MLP activation (a zero-shot swap)
      --ffn-gate SPEC     neuron gate (default dense): cats:S (target sparsity S), cett:T / cett-global:T (target
                          CETT), topk:F (keep fraction F per token), threshold:FILE (from dynact calibrate),
                          griffin:F / tda:T (neurons chosen from the prompt: top fraction F, or score >= T × top),
                          predictor:FILE[:topk:F] (from dynact fit-predictors: logit > 0, or the top F logits),
                          teal:S (TEAL: zero the fraction S of smallest inputs of every linear; f32 gather
                          mode runs every linear as a column gather over W stored transposed)
      --ffn-mode MODE     mask (dense compute, zero outside S; measures CETT) or gather (real sparse kernels)
                          (default mask)
      --down-dtype T      gather mode: the dtype of the transposed W_down, q8_0 (re-blocked along its new rows: a
                          requantization) or f16; default q8_0 for Q8_0/Q4_0 files, f16 for F16 ones, else f32
      --calib-text FILE   text to calibrate cats/cett/teal on (its first --calib-tokens tokens)
      --calib-tokens N    calibration tokens taken from --calib-text (default 4096)
      --head-gate SPEC    attention head gate (default dense): topk:F (keep fraction F of heads by query norm),
                          norm:F (oracle: by each head's output norm; accuracy simulation),
                          predictor:FILE[:topk:F] (from fit-predictors --heads: heads chosen from the input)
      --kv-policy P       for skipped heads: keep (K/V still written), skip (no K/V: the cache keeps a hole),
                          mask (full compute, output masked) (default keep)`;

/** Gates fitted on --calib-text when the model is loaded: the calibrated neuron gates and TEAL's input thresholds. */
const CALIB_TEXT_KINDS: readonly GateSpec["kind"][] = [...CALIBRATED_KINDS, "teal"];

export interface GateChoice {
  activation?: ActivationName;
  headGate: string;
  kvPolicy: KvPolicy;
  spec: GateSpec;
  mode: FfnMode;
  /** A quantized model's transposed W_down (gather mode). */
  downDType?: "q8_0" | "f16";
  calibText?: string;
  calibTokens: number;
}

export function parseGateOptions(v: Record<string, unknown>): GateChoice {
  const act = activationOption(v.act as string | undefined);
  const mode = (v["ffn-mode"] as string | undefined) ?? "mask";
  if (mode !== "mask" && mode !== "gather") throw new UsageError(`--ffn-mode must be mask or gather, got '${mode}'`);
  const downDType = v["down-dtype"] as string | undefined;
  if (downDType !== undefined && downDType !== "q8_0" && downDType !== "f16") {
    throw new UsageError(`--down-dtype must be q8_0 or f16, got '${downDType}'`);
  }
  // Mask mode runs W_down as stored: the option would be ignored, and the run taken for one with the other dtype.
  if (downDType !== undefined && mode !== "gather") throw new UsageError("--down-dtype applies to --ffn-mode gather (its transposed W_down)");
  let spec: GateSpec;
  try {
    spec = parseGateSpec((v["ffn-gate"] as string | undefined) ?? "dense");
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const calibTokens = number(v["calib-tokens"] as string | undefined, "--calib-tokens", 4096, isPosInt, "a positive integer");
  const headGate = (v["head-gate"] as string | undefined) ?? "dense";
  try {
    parseHeadGateSpec(headGate);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const kvPolicy = ((v["kv-policy"] as string | undefined) ?? "keep") as KvPolicy;
  if (!KV_POLICIES.includes(kvPolicy)) throw new UsageError(`--kv-policy must be one of ${KV_POLICIES.join(", ")}, got '${kvPolicy}'`);
  // Options that would change nothing are refused, so a run is never taken for one with them.
  if (v["kv-policy"] !== undefined && headGate === "dense") {
    throw new UsageError("--kv-policy applies to the heads a --head-gate skips; the dense head gate skips none");
  }
  if ((v["calib-text"] !== undefined || v["calib-tokens"] !== undefined) && !CALIB_TEXT_KINDS.includes(spec.kind)) {
    throw new UsageError(`--calib-text/--calib-tokens calibrate ${CALIB_TEXT_KINDS.join(", ")} gates; --ffn-gate ${spec.kind} takes no calibration`);
  }
  return {
    activation: act, headGate, kvPolicy, spec, mode, downDType,
    calibText: v["calib-text"] as string | undefined, calibTokens,
  };
}

/** Load options the gate choice needs: transposed W_down for gather mode, transposed W_o for head gates. */
export function layoutFor(g: GateChoice): {
  transposeDown: boolean; transposeWo: boolean; reserveBytes: number; downDType?: "q8_0" | "f16"; transposeInputs: boolean;
} {
  // reserveBytes: engine room for the gate's own tensors (a predictor's weights).
  return {
    transposeDown: g.mode === "gather", transposeWo: g.headGate !== "dense", downDType: g.downDType,
    transposeInputs: g.mode === "gather" && g.spec.kind === "teal",
    reserveBytes: gateBytes(g.spec) + headGateBytes(g.headGate),
  };
}

/** Install the chosen gate on a loaded model (calibrating first when the gate needs it). */
export function applyGate(loaded: LoadedModel, g: GateChoice, log: (line: string) => void): void {
  const { model, tokenizer } = loaded;
  const gate = buildNeuronGate(g.spec, model, {
    calibrationIds: g.calibText ? () => readTextTokens(g.calibText!, tokenizer, g.calibTokens) : undefined,
    onProgress: progressLine(log),
  });
  if (g.mode === "gather" && !model.weights.layers[0].downTransposed) {
    throw new DynactError("internal: gather mode needs a model loaded with transposeDown");
  }
  model.configureFfn({ gate, mode: g.mode, measureCett: g.mode === "mask" && gate !== null });
  model.configureTeal(buildTeal(g.spec, model, {
    calibrationIds: g.calibText ? () => readTextTokens(g.calibText!, tokenizer, g.calibTokens) : undefined,
  }));
  model.configureHeads(buildHeadGate(g.headGate, model), g.kvPolicy);
}

/**
 * Progress of long work on stderr: one line rewritten in place on a terminal (at most 10 times a second),
 * otherwise a line at every quarter, so logs stay short.
 */
export function progressLine(log: (line: string) => void) {
  const tty = process.stderr.isTTY === true;
  let lastStage = "";
  let lastPct = -1;
  let lastTime = 0;
  // `detail` (e.g. a loss and a rate) is appended to the line; a new detail alone does not force a line.
  return (stage: string, done: number, total: number, detail = "") => {
    const pct = Math.floor((100 * done) / total);
    const now = performance.now();
    const tail = detail ? `  ${detail}` : "";
    if (tty) {
      if (stage === lastStage && done < total && now - lastTime < 100) return;
      progressText(`${stage}: ${done}/${total} (${pct}%)${tail}`, done === total);
    } else {
      if (stage === lastStage && Math.floor(pct / 25) === Math.floor(lastPct / 25) && done < total) return;
      log(`${stage}: ${done}/${total} (${pct}%)${tail}`);
    }
    lastStage = stage;
    lastPct = pct;
    lastTime = now;
  };
}

/** The per-layer attention statistics under a head gate, as printed by perplexity and generate. */
export function headStatLines(a: AttentionStatsSummary): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `active heads per layer: ${a.head_active_fraction.map(pct).join(" ")}; KV holes: ${a.kv_hole_fraction.map(pct).join(" ")}`,
    `attention projection multiply-adds done: ${a.proj_mac_fraction.map(pct).join(" ")}`,
  ];
}

/** The per-layer MLP statistics as printed by perplexity and eval. */
export function ffnStatLines(ffn: FfnStatsSummary): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `active neurons per layer: ${ffn.active_fraction.map(pct).join(" ")}`,
    ...(ffn.cett.some((c) => c !== null) ? [`CETT per layer: ${ffn.cett.map((c) => (c === null ? "-" : c.toFixed(3))).join(" ")}`] : []),
    `FFN multiply-adds done: ${ffn.ffn_mac_fraction.map(pct).join(" ")}`,
    ...(ffn.oracle ? [`predictor recall per layer: ${ffn.oracle.recall.map(pct).join(" ")}; precision: ` +
      `${ffn.oracle.precision.map(pct).join(" ")}; oracle active: ${ffn.oracle.active_fraction.map(pct).join(" ")}`] : []),
  ];
}
