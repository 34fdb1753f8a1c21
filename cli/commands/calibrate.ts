import { calibrate, type CalibratedSpec } from "../../eval/calibrate";
import { readTextTokens } from "../../eval/text";
import { writeCalibration } from "../../models/gates/calibration";
import { ACTIVATIONS, type ActivationName } from "../../models/config";
import { parseGateSpec } from "../../models/gates/spec";
import { loadModel } from "../../models/load";
import { isPosInt, MODEL_OPTIONS, number, parse, requireString, threadsOption } from "../args";
import { progressLine } from "../gate-options";
import { UsageError } from "../usage-error";

export const help = `dynact calibrate -m MODEL [-t TOKENIZER] -d TEXT --ffn-gate SPEC -o FILE [--max-tokens N] [--samples N]

Fit per-layer thresholds for a threshold gate on calibration text and write them as JSON (with the model's and
the text's fingerprints); use them with --ffn-gate threshold:FILE. SPEC: cats:S (target sparsity), cett:T or
cett-global:T (target CETT, per layer or one threshold for all layers).

  -d, --data FILE      calibration text
  -o, --output FILE    calibration file to write
      --max-tokens N   use the first N tokens of the text (default 4096)
      --samples N      tokens whose activations are kept for fitting, spread over the text (default 1024)
      --ctx N          positions per window including BOS (default: the model's context)
      --act NAME       activation to calibrate for (default: the model's)
      --threads N         threads for the matrix products (default: the number of cores)`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...MODEL_OPTIONS,
    data: { type: "string", short: "d" },
    output: { type: "string", short: "o" },
    "ffn-gate": { type: "string" },
    "max-tokens": { type: "string" },
    samples: { type: "string" },
    ctx: { type: "string" },
    act: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  const data = requireString(v.data, "-d/--data");
  const out = requireString(v.output, "-o/--output");
  let spec;
  try {
    spec = parseGateSpec(requireString(v["ffn-gate"], "--ffn-gate"));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (spec.kind !== "cats" && spec.kind !== "cett" && spec.kind !== "cett-global") {
    throw new UsageError(`--ffn-gate ${v["ffn-gate"]}: only cats, cett and cett-global gates are calibrated`);
  }
  const maxTokens = number(v["max-tokens"], "--max-tokens", 4096, isPosInt, "a positive integer");
  const samples = number(v.samples, "--samples", 1024, isPosInt, "a positive integer");
  const ctx = v.ctx === undefined ? undefined : number(v.ctx, "--ctx", 0, isPosInt, "a positive integer");
  if (v.act !== undefined && !ACTIVATIONS.includes(v.act as ActivationName)) {
    throw new UsageError(`--act must be one of ${ACTIVATIONS.join(", ")}, got '${v.act}'`);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const loaded = loadModel(file, { tokenizer: v.tokenizer, activation: v.act as ActivationName | undefined, contextLength: ctx, threads: threadsOption(v.threads) });
  const ids = readTextTokens(data, loaded.tokenizer, maxTokens);
  const c = calibrate(loaded.model, ids, spec as CalibratedSpec, { maxSamples: samples, onProgress: progressLine(log) });
  writeCalibration(out, c);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  log(`wrote ${out}: ${c.gate}, thresholds ${c.thresholds.map((t) => t.toPrecision(4)).join(" ")}`);
  log(`active per layer ${c.measured.active_fraction.map(pct).join(" ")}; CETT ${c.measured.cett.map((x) => x.toFixed(3)).join(" ")}`);
}
