// Teacher-generated text (--synthetic): the batched decoder of models/train/synthetic.ts samples what the
// inference engine's generate() samples (one stream: the same stories token for token), is deterministic for a
// seed with many streams, and stops at the token budget.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { canonicalShapes } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { Sampler } from "../models/sampler";
import { generateStories, MAX_STORY_POSITIONS } from "../models/train/synthetic";
import { readTensorData } from "../models/weights";
import { haveAssets, shared } from "./assets";
import { randomWeights, tinyConfig } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-synthetic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The first n non-empty stories the inference engine samples from BOS with one sampler, as generateStories draws
 * them with one stream.
 */
function engineStories(file: string, n: number, seed: number): number[][] {
  const ckpt = openCheckpoint(file);
  const model = buildModel(ckpt);
  const sampler = new Sampler(ckpt.config.vocabSize, { temperature: 1, topP: 1, seed: 2 ** 52 + seed });
  const stories: number[][] = [];
  while (stories.length < n) {
    const story: number[] = [];
    model.beginSequence();
    let logits = model.forward(1, 0).f32();
    for (let pos = 1; ; pos++) {
      const next = sampler.sample(logits);
      if (next === 1 || next === 2) break;
      story.push(next);
      if (pos >= ckpt.config.seqLen) break;
      logits = model.forward(next, pos).f32();
    }
    if (story.length > 0) stories.push(story);
  }
  return stories;
}

describe.each([["silu"], ["relu"]] as const)("tiny random %s model", (activation) => {
  const config: LlamaConfig = { ...tinyConfig({ activation }), vocabSize: 12, seqLen: 16 };
  const file = path.join(dir, `${activation}.bin`);
  const weights = randomWeights(config, 7);
  writeLlama2cCheckpoint(file, config, (n) => Float32Array.from(weights(n)), { version: 0, tied: false });
  const ckpt = openCheckpoint(file);
  const gen = (tokens: number, seed: number, streams: number) =>
    generateStories(config, false, (n) => readTensorData(ckpt, n), { tokens, seed, bos: 1, eos: 2, streams });

  test("one stream gives the inference engine's stories token for token (stories end at BOS, EOS or a full context)", () => {
    const got = gen(200, 5, 1);
    const want = engineStories(file, got.length, 5);
    expect(got).toEqual(want);
    expect(got.every((s) => s.length >= 1 && s.length <= config.seqLen && !s.includes(1) && !s.includes(2))).toBe(true);
    expect(got.some((s) => s.length === config.seqLen)).toBe(true);
  });

  test("many streams: deterministic for a seed, another seed gives other stories, the budget is met", () => {
    const a = gen(300, 3, 8), b = gen(300, 3, 8), c = gen(300, 4, 8);
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    const total = a.reduce((s, x) => s + x.length, 0);
    expect(total).toBeGreaterThanOrEqual(300);
    expect(total).toBeLessThan(300 + 8 * config.seqLen); // stops at the step that meets it
  });
});

test("a story ends at MAX_STORY_POSITIONS whatever context the header claims", () => {
  // A model that never samples BOS or EOS: the MLP and attention add nothing, every embedding is e_0, and the
  // classifier scores e_0 high for every token but those two. With the context of 2^20 positions this header claims,
  // the stream's story ran 2^20 steps (and two tables of 2^20 position views were built first).
  const config: LlamaConfig = { ...tinyConfig(), vocabSize: 12, seqLen: 2 ** 20 };
  const { dim, vocabSize } = config;
  const tensor = (name: string): Float32Array => {
    const [rows, cols = 1] = canonicalShapes(config).get(name)!;
    const t = new Float32Array(rows * cols);
    if (name === "token_embd") for (let v = 0; v < vocabSize; v++) t[v * dim] = 1;
    if (name === "output") for (let v = 0; v < vocabSize; v++) t[v * dim] = v === 1 || v === 2 ? -20 : 20;
    if (name.endsWith("norm")) t.fill(1);
    return t;
  };
  const stories = generateStories(config, false, tensor, { tokens: 1, seed: 1, bos: 1, eos: 2, streams: 1 });
  expect(stories.map((s) => s.length)).toEqual([MAX_STORY_POSITIONS]);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))("stories260K", () => {
  test("one stream gives the inference engine's stories token for token (LlamaModel.forward + the sampler), and text", () => {
    const loaded = loadModel(shared("models/stories260K.bin"), { tokenizer: shared("models/tok512.bin") });
    const ckpt = loaded.checkpoint;
    const got = generateStories(ckpt.config, !ckpt.tensors.has("output"), (n) => readTensorData(ckpt, n),
      { tokens: 600, seed: 11, bos: loaded.tokenizer.bosId, eos: loaded.tokenizer.eosId, streams: 1 });
    const want = engineStories(shared("models/stories260K.bin"), got.length, 11);
    expect(got).toEqual(want);
    expect(loaded.tokenizer.decode(got[0], loaded.tokenizer.bosId)).toMatch(/^[A-Z]/);
  });
});
