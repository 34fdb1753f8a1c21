// Golden test against llama2.c's run.c (fixtures: numbers run.c printed for stories260K.bin + tok512.bin,
// greedy, 512 positions): the same token ids, and logits at the last prompt position within 1e-4.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { DynactError } from "../engine/errors";
import { generate, type GenerateOptions } from "../models/generate";
import { loadModel } from "../models/load";
import { Sampler } from "../models/sampler";
import { FIXTURES, haveAssets, shared } from "./assets";

interface GoldenCase {
  prompt: string;
  prompt_ids: number[];
  generated: number[];
  stopped_at_bos: boolean;
  last_logits: number[];
}
const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-greedy.json"), "utf8"));

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))("stories260K vs llama2.c run.c", () => {
  const loaded = loadModel(shared("models/stories260K.bin"), { tokenizer: shared("models/tok512.bin") });

  for (const c of golden.cases) {
    test(`greedy tokens for ${JSON.stringify(c.prompt)}`, () => {
      const result = generate(loaded, {
        prompt: c.prompt, maxNewTokens: 512, sampler: new Sampler(512, { temperature: 0, topP: 1, seed: 1 }),
      });
      expect(result.promptTokens).toEqual(c.prompt_ids);
      expect(result.tokens).toEqual(c.generated);
      expect(result.stop).toBe(c.stopped_at_bos ? "bos" : "length");
    });

    test(`last-position logits for ${JSON.stringify(c.prompt)}`, () => {
      let logits = new Float32Array(0);
      c.prompt_ids.forEach((id, pos) => (logits = loaded.model.forward(id, pos).read()));
      let maxDiff = 0;
      logits.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - c.last_logits[i]))));
      // run.c sums in a different order (scalar, -O2) and both round to f32: differences are ~1e-5.
      expect(maxDiff).toBeLessThan(1e-4);
      const argmax = (a: ArrayLike<number>) => Array.prototype.indexOf.call(a, Math.max(...Array.from(a)));
      expect(argmax(logits)).toBe(argmax(c.last_logits));
    });
  }

  test("generate's bad options are typed errors (from JavaScript a missing prompt or sampler was a TypeError)", () => {
    const sampler = new Sampler(512, { temperature: 0, topP: 1, seed: 1 });
    const bad = (o: object) => () => generate(loaded, { prompt: "Once", maxNewTokens: 5, sampler, ...o } as GenerateOptions);
    expect(bad({ prompt: undefined })).toThrow(new DynactError('the prompt must be a string ("" for none), got undefined'));
    expect(bad({ sampler: undefined })).toThrow(/generate needs a sampler/);
    expect(bad({ maxNewTokens: -1 })).toThrow(/non-negative integer, got -1/);
    expect(generate(loaded, { prompt: "", maxNewTokens: 3, sampler }).promptTokens).toEqual([1]); // an empty prompt is BOS alone
  });
});
