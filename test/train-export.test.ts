// A trained model leaves through the ordinary writers with its activation recorded, and loads back as the model
// the trainer ran: llama2.c with a JSON sidecar, GGUF with dynact.* keys; the inference engine's logits equal
// the trainer's. On the real stories260K, the trainer's forward pass scores text as `dynact perplexity` does.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { perplexity } from "../eval/perplexity";
import { readTextTokens } from "../eval/text";
import type { LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { sidecarPath } from "../models/formats/llama2c-sidecar";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { AdamW } from "../models/train/adamw";
import { buildTrainModel } from "../models/train/build";
import { exportModel, formatOf, type ExportFormat } from "../models/train/export";
import type { TrainModel } from "../models/train/model";
import { readTensorData } from "../models/weights";
import { haveAssets, shared } from "./assets";
import { randomWeights, tinyConfig, uniform } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-export-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A tiny model after a few training steps (so its weights are the trainer's, not the initial ones). */
function trained(over: Partial<LlamaConfig>, tied: boolean): { model: TrainModel; tokens: Int32Array } {
  const config = tinyConfig({ ...over, seqLen: 8 });
  const T = 8;
  const tokens = Int32Array.from(uniform(T, 4), (r) => Math.floor(((r + 1) / 2) * config.vocabSize) % config.vocabSize);
  const model = buildTrainModel(config, tied, randomWeights(config, 6), 1, T);
  const opt = new AdamW(model.params);
  for (let i = 0; i < 3; i++) {
    model.forward(tokens, tokens.map((t) => (t + 1) % config.vocabSize), 1, T);
    model.params.grad.fill(0);
    model.backward([0.1, 0.1]);
    opt.update(1e-2, 1);
  }
  return { model, tokens };
}

const cases: [string, Partial<LlamaConfig>, boolean, ExportFormat][] = [
  ["ReLU, llama2.c", { activation: "relu" }, true, "llama2c"],
  ["ReLU, GGUF", { activation: "relu" }, false, "gguf"],
  ["ReLU + ReLU after the norms, llama2.c", { activation: "relu", reluAfterNorm: true }, false, "llama2c"],
  ["ReLU + ReLU after the norms, GGUF", { activation: "relu", reluAfterNorm: true }, true, "gguf"],
  ["SiLU (dynact train), llama2.c", {}, true, "llama2c"],
];

test.each(cases)("%s: loads back with its activation, and its logits equal the trainer's", (name, over, tied, format) => {
  const { model, tokens } = trained(over, tied);
  const file = path.join(dir, `${name.replace(/\W+/g, "-")}.${format === "gguf" ? "gguf" : "bin"}`);
  expect(formatOf(file)).toBe(format);
  exportModel(file, format, model.params);
  const ckpt = openCheckpoint(file);
  expect(ckpt.config.activation).toBe(model.config.activation);
  expect(ckpt.config.reluAfterNorm ?? false).toBe(model.config.reluAfterNorm ?? false);
  expect(existsSync(sidecarPath(file))).toBe(format === "llama2c" && model.config.activation !== "silu");
  const want = model.logits(tokens, 1, tokens.length).slice();
  const engine = buildModel(ckpt);
  const V = model.config.vocabSize;
  // Same f32 weights, different summation orders (SIMD kernels vs the trainer's): a few ulps of the logits.
  tokens.forEach((t, pos) => {
    const got = engine.forward(t, pos).f32();
    for (let i = 0; i < V; i++) {
      const w = want[pos * V + i];
      if (!(Math.abs(got[i] - w) <= 1e-5 * (1 + Math.abs(w)))) throw new Error(`pos ${pos} logit ${i}: engine ${got[i]}, trainer ${w}`);
    }
  });
});

describe("llama2.c sidecar", () => {
  const config = tinyConfig({ seqLen: 8 });
  const weights = randomWeights(config, 1);
  const tensor = (n: string) => Float32Array.from(weights(n));

  test("a SiLU model written over a ReLU one removes the stale sidecar", () => {
    const file = path.join(dir, "overwrite.bin");
    writeLlama2cCheckpoint(file, { ...config, activation: "relu" }, tensor, { version: 0, tied: true });
    expect(JSON.parse(readFileSync(sidecarPath(file), "utf8"))).toEqual({ activation: "relu" });
    writeLlama2cCheckpoint(file, config, tensor, { version: 0, tied: true });
    expect(existsSync(sidecarPath(file))).toBe(false);
    expect(openCheckpoint(file).config.activation).toBe("silu");
  });

  test.each([
    ["not JSON", "{"], ["an array", "[]"], ["an unknown activation", '{"activation":"tanh"}'],
    ["a non-boolean relu_after_norm", '{"relu_after_norm":1}'], ["an unknown key", '{"activaton":"relu"}'],
  ])("a sidecar with %s is a FormatError naming it", (_, text) => {
    const file = path.join(dir, "bad.bin");
    writeLlama2cCheckpoint(file, config, tensor, { version: 0, tied: true });
    writeFileSync(sidecarPath(file), text);
    expect(() => openCheckpoint(file)).toThrow(FormatError);
    expect(() => openCheckpoint(file)).toThrow(/bad\.bin\.json/);
  });
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("stories260K", () => {
  test("the trainer's mean NLL of a window equals dynact perplexity's", () => {
    const loaded = loadModel(shared("models/stories260K.bin"), { tokenizer: shared("models/tok512.bin") });
    const T = 64;
    const ids = readTextTokens(shared("data/tinystories_val.txt"), loaded.tokenizer, T);
    const want = perplexity(loaded.model, ids, { ctx: T + 1 }).mean_nll;
    const ckpt = loaded.checkpoint;
    const model = buildTrainModel(ckpt.config, !ckpt.tensors.has("output"), (n) => readTensorData(ckpt, n), 1, T);
    const got = model.forward(Int32Array.from([loaded.tokenizer.bosId, ...ids.slice(0, -1)]), Int32Array.from(ids), 1, T).loss;
    expect(Math.abs(got - want)).toBeLessThan(1e-5);
  });
});
