// Golden perplexity against llama2.c's run.c (fixture: NLL sums its forward pass gave on our token ids of the
// first 4096 tokens of tinystories_val.txt, windows of ctx-1 text tokens from BOS): the library and the CLI agree.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { perplexity } from "../eval/perplexity";
import { readTextTokens } from "../eval/text";
import { DynactError } from "../engine/errors";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { FIXTURES, haveAssets, shared } from "./assets";

interface Reference {
  tokens: number;
  nll_sum: number;
  mean_nll: number;
  windows: { start: number; tokens: number; nll_sum: number }[];
}
const golden: { ids_sha256: string; ctx: Record<string, Reference> } =
  JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-perplexity.json"), "utf8"));
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");
const MAX_TOKENS = 4096;

/**
 * Both engines round logits to f32 and sum in different orders; measured: mean NLL within 3e-8, window sums (511
 * tokens) within 1e-4.
 */
function expectMatches(r: { mean_nll: number; tokens: number; windows: Reference["windows"] }, ref: Reference) {
  expect(r.tokens).toBe(ref.tokens);
  expect(Math.abs(r.mean_nll - ref.mean_nll)).toBeLessThan(1e-4);
  expect(r.windows.map((w) => [w.start, w.tokens])).toEqual(ref.windows.map((w) => [w.start, w.tokens]));
  r.windows.forEach((w, i) => expect(Math.abs(w.nll_sum - ref.windows[i].nll_sum)).toBeLessThan(1e-3));
}

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("perplexity vs llama2.c run.c", () => {
  const model = shared("models/stories260K.bin");
  const tok = shared("models/tok512.bin");
  const text = shared("data/tinystories_val.txt");
  const loaded = loadModel(model, { tokenizer: tok });
  const ids = readTextTokens(text, loaded.tokenizer, MAX_TOKENS);

  test("the token ids are those the reference scored", () => {
    expect(createHash("sha256").update(ids.join(" ")).digest("hex")).toBe(golden.ids_sha256);
  });

  for (const ctx of Object.keys(golden.ctx)) {
    test(`perplexity() at ctx ${ctx}`, () => {
      expectMatches(perplexity(loaded.model, ids, { ctx: Number(ctx) }), golden.ctx[ctx]);
    });
  }

  test("dynact perplexity --json at ctx 512", () => {
    const args = ["perplexity", "-m", model, "-t", tok, "-d", text, "--ctx", "512", "--max-tokens", String(MAX_TOKENS), "--json"];
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expectMatches(out, golden.ctx["512"]);
    expect(Math.abs(out.perplexity - Math.exp(golden.ctx["512"].mean_nll))).toBeLessThan(1e-3);
  });

  test("BOS is the model's, its tokenizer's: the loaded model and its model alone score the same", () => {
    const few = ids.slice(0, 100);
    expect(loaded.model.bosId).toBe(1);
    expect(perplexity(loaded, few, { ctx: 64 })).toEqual(perplexity(loaded.model, few, { ctx: 64 }));
    // Another BOS (LLaMA-3's is 128000) is another score (test/bos.test.ts: every entry point starts from it).
    const other = buildModel(openCheckpoint(model), { bosId: 5 });
    expect(perplexity(other, few, { ctx: 64 }).mean_nll).not.toBe(perplexity(loaded, few, { ctx: 64 }).mean_nll);
  });

  test("bad arguments are typed errors naming the argument, not NaN or positions the caller never passed", () => {
    const m = loaded.model;
    const fails = (f: () => unknown, pattern: RegExp) => {
      expect(f).toThrow(DynactError);
      expect(f).toThrow(pattern);
    };
    fails(() => perplexity(m, []), /no tokens to score/); // was NaN
    fails(() => perplexity(m, [5, 6, 9999]), /token 9999 \(at 2\) outside the vocabulary of 512/); // a target only: was NaN
    fails(() => perplexity(m, [5, 6.5]), /token 6\.5 \(at 1\)/);
    fails(() => perplexity(m, ids, { ctx: 1000 }), /ctx 1000 must be an integer from 2 .* context of 512/); // was "positions 512…575"
    fails(() => perplexity(m, ids, { ctx: 1 }), /ctx 1 must be/); // was "window length … got 0"
    fails(() => perplexity(m, ids, { ctx: 2.5 }), /ctx 2\.5 must be/);
    fails(() => buildModel(openCheckpoint(model), { bosId: 512 }), /BOS 512 outside the vocabulary/);
    fails(() => perplexity(m, ids, { promptLength: -1 }), /prompt length must be a non-negative integer, got -1/); // was "positions -1…-1"
    // readTextTokens(…, -5) kept all but the last 5 tokens of the file; 0 gave none, 2.5 two
    for (const n of [-5, 0, 2.5, NaN]) fails(() => readTextTokens(text, loaded.tokenizer, n), /the number of tokens to read must be a positive integer/);
    expect(readTextTokens(text, loaded.tokenizer, 3)).toEqual(ids.slice(0, 3));
  });
});
