// End-to-end decode speed under neuron gates in gather mode (the real sparse kernels) against dense decode, on a
// deterministic random-weight model. Threshold gates are calibrated on random token ids first: random weights
// have no text to calibrate on, and the calibration's sparsity is reported with the speed. `predictor:F` fits a
// small low-rank predictor (rank 32, top-F labels, a few epochs on random tokens) and runs it as a top-F gate: its
// accuracy means nothing on random weights, but its cost is real and included in the measured time.
import { calibrate } from "../eval/calibrate";
import path from "node:path";
import { buildNeuronGate, gateBytes } from "../eval/gate-factory";
import { fitPredictors } from "../eval/predictor/fit";
import { writePredictor } from "../models/gates/predictor-file";
import { parseGateSpec } from "../models/gates/spec";
import { ThresholdGate } from "../models/gates/threshold-gate";
import type { NeuronGate } from "../models/gates/neuron-gate";
import { buildModel, openCheckpoint } from "../models/load";
import { decodeTokensPerSecond } from "./decode";
import { benchCacheDir, randomLlama2cModel } from "./random-model";
import type { BenchShape } from "./shapes";
import { summarize, type Summary } from "./stats";

export interface GatedDecodeRow {
  shape: string;
  gate: string;
  tokens_per_second: Summary;
  /** Mean active neuron fraction over layers during the measurement. */
  active_fraction: number;
  /** median(gated) / median(dense) */
  speedup: number;
}

export function runGatedDecodeBench(opts: {
  shape: BenchShape;
  gates: string[];
  steps?: number;
  rounds?: number;
  calibrationTokens?: number;
  log?: (line: string) => void;
}): GatedDecodeRow[] {
  const steps = opts.steps ?? 128;
  const log = opts.log ?? (() => {});
  const file = randomLlama2cModel(opts.shape.name, { ...opts.shape.config, seqLen: Math.max(steps, opts.shape.config.seqLen) });
  // A llama2.c model: BOS 1, as its tokenizer.bin has it (predictors and thresholds are fitted from it).
  const dense = buildModel(openCheckpoint(file), { bosId: 1 });
  const vocab = opts.shape.config.vocabSize;
  const ids = Array.from({ length: opts.calibrationTokens ?? 128 }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
  // Predictors are fitted on the dense instance first: their tensors are reserved when the sparse one is loaded.
  const predictors = new Map<string, string>();
  for (const spec of opts.gates.filter((g) => g.startsWith("predictor:"))) {
    const keep = Number(spec.slice("predictor:".length));
    log(`${opts.shape.name}: fitting ${spec}`);
    const p = fitPredictors(dense, ids, {
      label: { kind: "topk", keep }, rank: 32, sigma: "relu", lookahead: false, ctx: ids.length + 1,
      train: { epochs: 2, patience: 1 },
    });
    const pfile = path.join(benchCacheDir(), `${opts.shape.name}-predictor-${keep}.pred`);
    writePredictor(pfile, p);
    predictors.set(spec, `predictor:${pfile}:topk:${keep}`);
  }
  const reserve = [...predictors.values()].reduce((n, g) => n + gateBytes(parseGateSpec(g)), 0);
  const sparse = buildModel(openCheckpoint(file), { transposeDown: true, reserveBytes: reserve, bosId: 1 });
  const gates = new Map<string, NeuronGate | null>();
  for (const spec of opts.gates) {
    const parsed = parseGateSpec(predictors.get(spec) ?? spec);
    log(`${opts.shape.name}: preparing ${spec}`);
    if (parsed.kind === "cats" || parsed.kind === "cett" || parsed.kind === "cett-global") {
      const c = calibrate(sparse, ids, parsed, { ctx: ids.length + 1, maxSamples: ids.length });
      gates.set(spec, new ThresholdGate(c.gate, c.score, c.thresholds, c.score === "act-downnorm" ? sparse.downNorms() : null));
    } else {
      gates.set(spec, buildNeuronGate(parsed, sparse));
    }
  }
  const runs = new Map<string, number[]>([...gates.keys()].map((k) => [k, []]));
  const active = new Map<string, number>();
  for (let r = 0; r < (opts.rounds ?? 5); r++) {
    for (const [spec, gate] of gates) {
      const model = gate ? sparse : dense;
      model.configureFfn({ gate, mode: gate ? "gather" : "mask" });
      runs.get(spec)!.push(decodeTokensPerSecond(model, steps));
      const a = model.ffnStats.summary().active_fraction;
      active.set(spec, a.reduce((x, y) => x + y, 0) / a.length);
      log(`round ${r + 1} ${spec}: ${runs.get(spec)!.at(-1)!.toFixed(1)} tok/s, active ${(100 * active.get(spec)!).toFixed(1)}%`);
    }
  }
  const denseMedian = summarize(runs.get(opts.gates[0])!).median;
  return [...runs].map(([gate, r]) => ({
    shape: opts.shape.name, gate, tokens_per_second: summarize(r), active_fraction: active.get(gate)!,
    speedup: summarize(r).median / denseMedian,
  }));
}
