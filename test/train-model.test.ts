// The training model as a whole: its gradient against finite differences on tiny random LLaMAs (f64, GQA,
// tied and untied, SiLU / ReLU / ReLU after the norms, with the L1 penalty), the f32 wasm model against that
// reference, overfitting a repeated sequence, and bit-exact determinism (same seed; a resumed run).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import type { LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { AdamW } from "../models/train/adamw";
import { buildTrainModel } from "../models/train/build";
import type { TextSplit } from "../models/train/data";
import { TrainModel } from "../models/train/model";
import { tsOps } from "../models/train/ops";
import { Params } from "../models/train/params";
import { readTrainCheckpoint, restoreTrainer, writeTrainCheckpoint } from "../models/train/train-checkpoint";
import { l1Steering, Trainer, type TrainOptions } from "../models/train/trainer";
import { expectGradient, forgeTrainCheckpoint, randomWeights, tinyConfig, uniform } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-train-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const randomTokens = (n: number, vocab: number, seed: number) =>
  Int32Array.from(uniform(n, seed), (r) => Math.floor(((r + 1) / 2) * vocab) % vocab);

// λ per layer (the tiny models have two layers).
const cases: [string, Partial<LlamaConfig>, boolean, number[]][] = [
  ["SiLU, tied", {}, true, [0, 0]],
  ["SiLU, untied, L1", {}, false, [0.5, 0.2]],
  ["ReLU, L1", { activation: "relu" }, true, [0.5, 0.2]],
  ["ReLU + ReLU after the norms, untied, L1", { activation: "relu", reluAfterNorm: true }, false, [0.3, 0.6]],
];

describe.each(cases)("whole model, %s", (_, over, tied, l1) => {
  const config = tinyConfig(over);
  const B = 2, T = 5;
  const tokens = randomTokens(B * T, config.vocabSize, 1);
  const targets = randomTokens(B * T, config.vocabSize, 2);

  test("gradient of mean CE + mean_l λ_l·mean|act_l| equals finite differences (f64) for every parameter", () => {
    const params = Params.from(config, tied, randomWeights(config, 3), tsOps(Float64Array));
    const model = new TrainModel(params, B, T);
    const f = () => {
      const s = model.forward(tokens, targets, B, T);
      return s.loss + (l1[0] * s.actAbsMean[0] + l1[1] * s.actAbsMean[1]) / 2;
    };
    f();
    params.grad.fill(0);
    model.backward(l1);
    expectGradient(f, params.data as Float64Array, params.grad.slice(), "parameter");
  });

  test("the f32 wasm model gives the f64 reference's loss and gradient to f32 accuracy", () => {
    const weights = randomWeights(config, 3);
    const rounded = (name: string) => Float64Array.from(weights(name), Math.fround);
    const ref = new TrainModel(Params.from(config, tied, rounded, tsOps(Float64Array)), B, T);
    const f32 = buildTrainModel(config, tied, rounded, B, T);
    const want = ref.forward(tokens, targets, B, T);
    const got = f32.forward(tokens, targets, B, T);
    for (const m of [ref, f32]) {
      m.params.grad.fill(0);
      m.backward(l1);
    }
    // A few dozen f32 operations deep, each ~6e-8 relative: 1e-5 of the largest gradient is a wide margin, and a
    // wrong kernel index changes gradients by O(1).
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-5 * want.loss);
    const g = ref.params.grad;
    const scale = Math.max(...Array.from(g, Math.abs));
    f32.params.grad.forEach((v, i) => {
      if (!(Math.abs(v - g[i]) <= 1e-5 * scale)) throw new Error(`grad[${i}]: f32 ${v}, f64 ${g[i]}`);
    });
    expect(got.zeroFraction).toEqual(want.zeroFraction);
  });
});

describe("distillation", () => {
  const config = tinyConfig({ activation: "relu" });
  const B = 2, T = 5;
  const tokens = randomTokens(B * T, config.vocabSize, 1);
  const targets = randomTokens(B * T, config.vocabSize, 2);
  const teacher = uniform(B * T * config.vocabSize, 4, 3);
  const l1 = [0.4, 0.1];

  test("gradient of mean((1 − α)·CE + α·τ²·KL) + L1 through the whole model equals finite differences (f64)", () => {
    const params = Params.from(config, false, randomWeights(config, 3), tsOps(Float64Array));
    const model = new TrainModel(params, B, T);
    const alpha = 0.7, temp = 2;
    const f = () => {
      const s = model.forwardDistill(tokens, targets, teacher, B, T, alpha, temp);
      return (1 - alpha) * s.loss + alpha * s.kl! + (l1[0] * s.actAbsMean[0] + l1[1] * s.actAbsMean[1]) / 2;
    };
    f();
    params.grad.fill(0);
    model.backward(l1);
    expectGradient(f, params.data as Float64Array, params.grad.slice(), "parameter");
  });

  test("α = 0 gives plain cross-entropy's loss and gradient; a plain forward after it is plain again", () => {
    const model = new TrainModel(Params.from(config, true, randomWeights(config, 3), tsOps(Float64Array)), B, T);
    const grads = (distill: boolean) => {
      const s = distill ? model.forwardDistill(tokens, targets, teacher, B, T, 0, 1.5) : model.forward(tokens, targets, B, T);
      model.params.grad.fill(0);
      model.backward(l1);
      return { loss: s.loss, grad: Array.from(model.params.grad) };
    };
    const plain = grads(false), distilled = grads(true), again = grads(false);
    expect(distilled.loss).toBeCloseTo(plain.loss, 12);
    distilled.grad.forEach((g, i) => expect(g).toBeCloseTo(plain.grad[i], 12));
    expect(again).toEqual(plain);
  });

  test("a student distilled from a teacher with its own weights has KL 0 and no gradient from it", () => {
    const weights = randomWeights(config, 3);
    const teacherModel = new TrainModel(Params.from(config, true, weights, tsOps(Float64Array)), B, T);
    const student = new TrainModel(Params.from(config, true, weights, tsOps(Float64Array)), B, T);
    const s = student.forwardDistill(tokens, targets, teacherModel.logits(tokens, B, T).slice(), B, T, 1, 1);
    expect(Math.abs(s.kl!)).toBeLessThan(1e-12);
    student.params.grad.fill(0);
    student.backward([0, 0]);
    expect(Math.max(...Array.from(student.params.grad, Math.abs))).toBeLessThan(1e-12);
  });
});

test.each([["silu"], ["relu"]] as const)("a tiny %s model overfits a repeated sequence (loss → ~0)", (activation) => {
  const config: LlamaConfig = { ...tinyConfig({ activation }), dim: 16, hiddenDim: 32, vocabSize: 16, seqLen: 16 };
  const T = 16, B = 2;
  const pattern = [3, 5, 7, 2, 9, 11, 4];
  const text = Int32Array.from({ length: T }, (_, i) => pattern[i % pattern.length]);
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    tokens.set([1, ...text.subarray(0, T - 1)], b * T);
    targets.set(text, b * T);
  }
  const model = buildTrainModel(config, true, randomWeights(config, 5), B, T);
  const opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
  const first = model.forward(tokens, targets, B, T).loss;
  let loss = first;
  for (let step = 0; step < 150; step++) {
    loss = model.forward(tokens, targets, B, T).loss;
    model.params.grad.fill(0);
    model.backward([0, 0]);
    opt.update(1e-2, 1);
  }
  expect(first).toBeGreaterThan(2);
  expect(loss).toBeLessThan(0.01);
});

describe("determinism", () => {
  const config = tinyConfig({ activation: "relu", vocabSize: 16, seqLen: 8 });
  const split: TextSplit = { heldout: randomTokens(20, 16, 7), train: randomTokens(300, 16, 8) };
  const opts: TrainOptions = { steps: 6, lr: 3e-3, warmup: 2, batch: 3, seq: 8, l1: 0.1, l1Warmup: 3, sparsity: 0.8,
    seed: 42, evalEvery: 3, heldout: 20, weightDecay: 0.1, gradClip: 0.5, distill: 0, distillTemp: 1, synthetic: 0 };
  const trainer = (o: TrainOptions = opts) => new Trainer(buildTrainModel(config, true, randomWeights(config, 9), o.batch, o.seq), split, o, 1);
  const bits = (t: Trainer) => [Float32Array.from(t.model.params.data), t.opt.m, t.opt.v].map((a) => Array.from(new Uint32Array(a.buffer)));

  test("same seed, same weights and optimizer state bit for bit; another seed, other weights", () => {
    const [a, b, c] = [trainer(), trainer(), trainer({ ...opts, seed: 43 })];
    for (const t of [a, b, c]) while (!t.done) t.runStep();
    expect(bits(a)).toEqual(bits(b));
    expect(bits(a)[0]).not.toEqual(bits(c)[0]);
  });

  test("a run resumed from its checkpoint ends bit for bit where the uninterrupted run ends", () => {
    const whole = trainer();
    while (!whole.done) whole.runStep();
    const first = trainer();
    for (let i = 0; i < 3; i++) first.runStep();
    const file = path.join(dir, "run.ckpt");
    writeTrainCheckpoint(file, first, "data");
    const ckpt = readTrainCheckpoint(file);
    expect(ckpt.meta).toMatchObject({ step: 3, options: opts, data: "data", tied: true, config });
    const resumed = new Trainer(buildTrainModel(config, true, undefined, opts.batch, opts.seq), split, ckpt.meta.options, 1);
    restoreTrainer(resumed, ckpt);
    while (!resumed.done) resumed.runStep();
    expect(bits(resumed)).toEqual(bits(whole));
  });

  test("a checkpoint's header is checked before a model is built from it (FormatError naming the field)", () => {
    // The config sized the training model as found: 2^24 layers exhausted the heap, a missing config was a
    // TypeError, before the parameter count was compared with the model's.
    const t = trainer();
    t.runStep();
    const original = path.join(dir, "forge-original.ckpt");
    writeTrainCheckpoint(original, t, "data");
    const file = path.join(dir, "forge.ckpt");
    const forged = (edit: (m: Record<string, any>) => void) => {
      forgeTrainCheckpoint(original, file, edit);
      try {
        readTrainCheckpoint(file);
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
        expect((e as FormatError).file).toBe(file);
        return `${(e as FormatError).field}: ${(e as Error).message.slice(`${file}: ${(e as FormatError).field}: `.length)}`;
      }
      return "accepted";
    };
    expect(forged((m) => (m.config.nLayers = 2 ** 24))).toMatch(/^params: \d+, but a model of its config has \d+$/);
    expect(forged((m) => (m.config.hiddenDim = 2 ** 24))).toMatch(/^params: /);
    expect(forged((m) => delete m.config)).toBe("config: undefined is not an object");
    expect(forged((m) => (m.config = "x"))).toBe('config: "x" is not an object');
    expect(forged((m) => (m.config.nHeads = 0))).toBe("config.nHeads: must be a positive integer, got 0");
    expect(forged((m) => (m.config.activation = "tanh"))).toBe("config.activation: unknown tanh");
    expect(forged((m) => (m.config.reluAfterNorm = 1))).toBe("config.reluAfterNorm: 1 is not a boolean");
    const half = config.dim / config.nHeads / 2;
    expect(forged((m) => (m.config.ropeScaling = { type: "divisors", divisors: new Array(half + 1).fill(1) })))
      .toBe(`config.ropeScaling.divisors: ${half + 1} divisors for a head of ${half} frequencies`);
    expect(forged((m) => (m.config.ropeScaling = { type: "divisors", divisors: { 0: 1, x: 2 } }))).toMatch(/^config\.ropeScaling\.divisors: .* is not a list of numbers$/);
    expect(forged((m) => (m.config.ropeScaling = { type: "yarn" }))).toMatch(/^config\.ropeScaling: .* is neither llama3 parameters nor frequency divisors$/);
    expect(forged((m) => (m.tied = "yes"))).toBe('tied: "yes" is not a boolean');
    expect(forged((m) => (m.tied = false))).toMatch(/^params: /); // an untied model has a classifier more
    expect(forged((m) => (m.step = -5))).toBe("step: -5 is not a step number");
    expect(forged((m) => (m.options = null))).toBe("options: null is not an object");
    expect(forged((m) => (m.data = 3))).toBe("data: 3 is not a fingerprint");
    expect(forged(() => {})).toBe("accepted");
    // llama.cpp's divisors come back as divisors (JSON keeps a Float32Array as an object of its indices).
    expect(forged((m) => (m.config.ropeScaling = { type: "divisors", divisors: Object.fromEntries(Array.from({ length: half }, (_, j) => [j, j + 1])) })))
      .toBe("accepted");
    expect(readTrainCheckpoint(file).meta.config.ropeScaling).toEqual({ type: "divisors", divisors: Float32Array.from({ length: half }, (_, j) => j + 1) });
    // llama3 parameters as config.json and the GGUF keys must hold them (a blend band of positive width), or the
    // model trained here is written to files neither reader takes back.
    const llama3 = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16 };
    expect(forged((m) => (m.config.ropeScaling = llama3))).toBe("accepted");
    expect(forged((m) => (m.config.ropeScaling = { ...llama3, highFreqFactor: 1 })))
      .toBe("config.ropeScaling.highFreqFactor: 1 must exceed the low frequency factor 1");
    expect(forged((m) => (m.config.ropeScaling = { ...llama3, factor: -1 }))).toBe("config.ropeScaling.factor: -1 is not a positive number");
  });

  test("the sparsity target keeps λ for layers short of it and removes it from layers past it", () => {
    expect([0.7, 0.8, 0.81, 0.9].map((z) => l1Steering(0.8, z))).toEqual([1, 1, 0.5, 0].map((x) => expect.closeTo(x, 12)));
    const o = { ...opts, l1: 0.1, l1Warmup: 0 };
    for (const [sparsity, above] of [[0.99, true], [0.01, false]] as const) {
      const r = trainer({ ...o, sparsity }).runStep();
      expect(r.l1.every((x) => (above ? x === 0.1 : x === 0))).toBe(true);
    }
  });

  test("held-out evaluation covers every held-out token once", () => {
    const e = trainer().evaluate();
    expect(e.tokens).toBe(20);
    expect(e.perplexity).toBeCloseTo(Math.exp(e.loss), 10);
    expect(e.zeroFraction).toHaveLength(config.nLayers);
  });
});
