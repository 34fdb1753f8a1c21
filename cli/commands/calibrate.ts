import { calibrate } from "../../eval/calibrate";
import { readTextTokens } from "../../eval/text";
import { writeCalibration } from "../../models/gates/calibration";
import { CALIBRATED_KINDS, isCalibratedSpec, parseGateSpec } from "../../models/gates/spec";
import { loadModel } from "../../models/load";
import { isPosInt, number, outputFile, parse, requireString, TEXT_FIT_OPTIONS, textFitArgs, THREADS_HELP } from "../args";
import { progressLine } from "../gate-options";
import { logLine } from "../log";
import { UsageError } from "../usage-error";

export const help = `dynact calibrate -m MODEL [-t TOKENIZER] -d TEXT --ffn-gate SPEC -o FILE [--max-tokens N] [--samples N]

Fit per-layer thresholds for a threshold gate on calibration text and write them as JSON (with the model's and
the text's fingerprints); use them with --ffn-gate threshold:FILE. SPEC: cats:S (target sparsity), cett:T or
cett-global:T (target CETT, per layer or one threshold for all layers).

  -d, --data FILE         calibration text
  -o, --output FILE       calibration file to write
      --max-tokens N      use the first N tokens of the text (default 4096)
      --samples N         tokens whose activations are kept for fitting, spread over the text (default 1024)
      --ctx N             positions per window including BOS, from 2 (default: the model's context)
      --act NAME          activation to calibrate for (default: the model's)
${THREADS_HELP}`;

// calibrate reports on stderr and writes the file: no --json.
const { json: _, ...FIT_OPTIONS } = TEXT_FIT_OPTIONS;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...FIT_OPTIONS,
    "ffn-gate": { type: "string" },
    samples: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const a = textFitArgs(v);
  const out = a.output;
  let spec;
  try {
    spec = parseGateSpec(requireString(v["ffn-gate"], "--ffn-gate"));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!isCalibratedSpec(spec)) {
    throw new UsageError(`--ffn-gate ${v["ffn-gate"]}: only ${CALIBRATED_KINDS.join(", ")} gates are calibrated`);
  }
  const samples = number(v.samples, "--samples", 1024, isPosInt, "a positive integer");
  outputFile(out, "-o");
  const log = (line: string) => logLine(line);
  const loaded = loadModel(a.model, { tokenizer: v.tokenizer, activation: a.activation, contextLength: a.ctx, threads: a.threads });
  const ids = readTextTokens(a.data, loaded.tokenizer, a.maxTokens);
  const c = calibrate(loaded.model, ids, spec, { maxSamples: samples, onProgress: progressLine(log) });
  writeCalibration(out, c);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  log(`wrote ${out}: ${c.gate}, thresholds ${c.thresholds.map((t) => t.toPrecision(4)).join(" ")}`);
  log(`active per layer ${c.measured.active_fraction.map(pct).join(" ")}; CETT ${c.measured.cett.map((x) => x.toFixed(3)).join(" ")}`);
}
