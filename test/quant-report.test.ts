// dynact quant-report: each conversion scored against the model as stored on perplexity()'s windows. On
// stories260K (first 4096 TinyStories validation tokens): the numbers equal those of `dynact perplexity` on the
// reference and on the converted files, f16 is lossless, Q8_0 nearly so, Q4_0 visibly not. Without the shared
// assets: a model compared with itself agrees everywhere, and the CLI contract on a tiny random model.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DynactError } from "../engine/errors";
import { perplexity } from "../eval/perplexity";
import { compareModels, quantReport } from "../eval/quant-report";
import { readTextTokens } from "../eval/text";
import { convertToGguf, readGgufCheckpoint } from "../models/formats/gguf";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { readLlama2cTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { haveAssets, shared } from "./assets";
import { byteLevelModel } from "./byte-level-vocab";
import { dynact, expectFailure } from "./cli-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-quantrep-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("stories260K: f16, Q8_0, Q4_0 against f32", () => {
  const bin = shared("models/stories260K.bin");
  const ckpt = openCheckpoint(bin);
  const ids = readTextTokens(shared("data/tinystories_val.txt"), readLlama2cTokenizer(shared("models/tok512.bin")), 4096);
  const keep = path.join(dir, "keep");
  const r = quantReport(ckpt, ids, { dtypes: ["f16", "q8_0", "q4_0"], dir: keep, bosId: 1 });
  const row = (d: string) => r.rows.find((x) => x.dtype === d)!;

  it("reference and converted perplexities are dynact perplexity's", () => {
    expect(r).toMatchObject({ tokens: 4096, ctx: 512, reference_dtypes: ["f32"] });
    const ref = perplexity(buildModel(ckpt, { bosId: 1 }), ids);
    expect(r.reference.mean_nll).toBeCloseTo(ref.mean_nll, 12);
    for (const d of ["f16", "q8_0", "q4_0"]) {
      const file = path.join(keep, `stories260K-${d}.gguf`);
      const p = perplexity(buildModel(readGgufCheckpoint(file), { bosId: 1 }), ids);
      expect(row(d).mean_nll, d).toBeCloseTo(p.mean_nll, 12);
    }
  });

  it("f16 is lossless, Q8_0 nearly so (top-1 agreement ≥ 0.98, |Δ perplexity| < 1%), Q4_0 costs more", () => {
    expect(row("f16").top1_agreement).toBeGreaterThanOrEqual(0.999);
    expect(Math.abs(row("f16").delta_perplexity_rel)).toBeLessThan(1e-3);
    expect(row("q8_0").top1_agreement).toBeGreaterThanOrEqual(0.98);
    expect(Math.abs(row("q8_0").delta_perplexity_rel)).toBeLessThan(0.01);
    expect(row("q8_0").mean_kl).toBeLessThan(2e-3);
    expect(row("q4_0").top1_agreement).toBeGreaterThan(0.75);
    expect(row("q4_0").delta_perplexity_rel).toBeGreaterThan(0.02);
    expect(row("q4_0").delta_perplexity_rel).toBeLessThan(0.25);
    // Fewer bits, larger divergence.
    expect(row("f16").mean_kl).toBeLessThan(row("q8_0").mean_kl);
    expect(row("q8_0").mean_kl).toBeLessThan(row("q4_0").mean_kl);
    expect(row("q8_0").weight_bytes).toBeLessThan(row("f16").weight_bytes);
    expect(row("q4_0").weight_bytes).toBeLessThan(row("q8_0").weight_bytes);
  });

  it("gives the README's table (deterministic: the same numbers to the digits shown)", () => {
    expect(r.reference.perplexity).toBeCloseTo(4.0295, 4);
    expect(r.reference.top1_accuracy).toBeCloseTo(0.6445, 4);
    const want = { f16: [4.0293, 1.0, 5.5e-7], q8_0: [4.0351, 0.9858, 6.8e-4], q4_0: [4.4652, 0.8345, 1.1e-1] } as const;
    for (const [d, [ppl, agree, kl]] of Object.entries(want)) {
      expect(row(d).perplexity, d).toBeCloseTo(ppl, 4);
      expect(row(d).top1_agreement, d).toBeCloseTo(agree, 4);
      expect(Math.abs(row(d).mean_kl / kl - 1), d).toBeLessThan(0.05); // two digits shown
    }
  });

  it("matrices quantization cannot block stay f16 and are listed (W_down: rows of 172)", () => {
    expect(row("f16").fallbacks).toEqual([]);
    for (const d of ["q8_0", "q4_0"]) expect(row(d).fallbacks.map((f) => f.name)).toEqual([0, 1, 2, 3, 4].map((l) => `blk.${l}.ffn_down`));
  });
});

describe("quant-report without the shared assets", () => {
  const { model, text } = byteLevelModel(dir, "tiny", 11);

  it("a model against itself: full agreement, zero KL, the same perplexity as perplexity()", () => {
    const ckpt = readGgufCheckpoint(model);
    const ids = readTextTokens(text, loadModel(model).tokenizer, 150);
    const build = () => buildModel(ckpt, { bosId: 268 });
    const c = compareModels(build(), [build(), build()], ids, { ctx: 33 });
    expect(c.tokens).toBe(150);
    expect(c.candidates).toHaveLength(2);
    for (const k of c.candidates) {
      expect(k.top1_agreement).toBe(1);
      expect(k.mean_kl).toBe(0);
      expect(k.scores).toEqual(c.reference);
    }
    expect(c.reference.mean_nll).toBeCloseTo(perplexity(build(), ids, { ctx: 33 }).mean_nll, 12);
  });

  it("no ids, or an id outside the vocabulary, is a typed error (the scores were NaN)", () => {
    const ckpt = readGgufCheckpoint(model);
    const [ref, cand] = [buildModel(ckpt), buildModel(ckpt)];
    expect(() => compareModels(ref, [cand], [])).toThrow(new DynactError("no tokens to score"));
    expect(() => compareModels(ref, [cand], [5, 6, 9999])).toThrow(new DynactError("token 9999 (at 2) outside the vocabulary of 269"));
  });

  it("several candidates in one pass score as each does alone; passes split by maxBytes give the same report", () => {
    const ckpt = readGgufCheckpoint(model);
    const ids = readTextTokens(text, loadModel(model).tokenizer, 150);
    const q8 = path.join(dir, "tiny-q8.gguf");
    convertToGguf(ckpt, q8, "q8_0");
    const other = byteLevelModel(dir, "tiny-other", 12).model;
    const cands = [q8, other].map((f) => readGgufCheckpoint(f));
    const build = (c: typeof ckpt) => buildModel(c, { bosId: 268 });
    const both = compareModels(build(ckpt), cands.map(build), ids, { ctx: 33 });
    cands.forEach((c, i) => {
      const alone = compareModels(build(ckpt), [build(c)], ids, { ctx: 33 });
      expect(both.candidates[i]).toEqual(alone.candidates[0]);
      expect(both.reference).toEqual(alone.reference);
    });
    expect(both.candidates[0]!.mean_kl).toBeGreaterThan(0);
    expect(both.candidates[1]!.mean_kl).toBeGreaterThan(both.candidates[0]!.mean_kl);
    const opts = { dtypes: ["f16", "q8_0", "q4_0"] as const, ctx: 33, bosId: 268 };
    const onePass = quantReport(ckpt, ids, opts);
    const stages: string[] = [];
    const perDtype = quantReport(ckpt, ids, { ...opts, maxBytes: 1, onProgress: (s) => void stages.push(s) });
    expect(perDtype).toEqual(onePass);
    expect(new Set(stages.filter((x) => x.startsWith("scoring")))).toEqual(new Set(["scoring f16", "scoring q8_0", "scoring q4_0"]));
    // Exactly the reference and the first two candidates fit: two passes.
    const [f16, q8_0] = onePass.rows.map((r) => r.weight_bytes);
    const fit = onePass.reference.weight_bytes + f16! + q8_0!;
    for (const [maxBytes, want] of [[fit, ["scoring f16, q8_0", "scoring q4_0"]], [fit - 1, ["scoring f16", "scoring q8_0, q4_0"]]] as const) {
      const seen: string[] = [];
      expect(quantReport(ckpt, ids, { ...opts, maxBytes, onProgress: (s) => void seen.push(s) })).toEqual(onePass);
      expect([...new Set(seen.filter((x) => x.startsWith("scoring")))]).toEqual(want);
    }
  });

  it("CLI: a table, --json, --help, and usage errors", () => {
    const table = dynact("quant-report", "-m", model, "-d", text, "--ctx", "20", "--dtypes", "q8_0,q4_0", "--threads", "1");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^.*tiny\.gguf: \d+ tokens of .*tiny\.txt, windows of 19 tokens \(context 20\)\ndtype +weights +perplexity/);
    expect(table.stdout).toMatch(/\nf32 .*\(reference\).*\nq8_0 .*\nq4_0 /);
    const j = dynact("quant-report", "-m", model, "-d", text, "--max-tokens", "64", "--dtypes", "f16", "--json", "--threads", "1");
    expect(j.code).toBe(0);
    const r = JSON.parse(j.stdout);
    expect(r).toMatchObject({ tokens: 64, ctx: 40, reference_dtypes: ["f32"], rows: [{ dtype: "f16", fallbacks: [] }] });
    for (const k of ["perplexity", "delta_perplexity", "delta_perplexity_rel", "top1_agreement", "mean_kl", "max_kl", "top1_accuracy", "weight_bytes"]) {
      expect(typeof r.rows[0][k], k).toBe("number");
    }
    const h = dynact("quant-report", "--help");
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^dynact quant-report -m MODEL/);
    expect(dynact("--help").stdout).toMatch(/quant-report/);
    expectFailure(dynact("quant-report", "-m", model, "-d", text, "--dtypes", "q5_k"), 2, /--dtypes takes a comma-separated list of f16, bf16, q8_0, q4_0; got 'q5_k'/);
    expectFailure(dynact("quant-report", "-m", model), 2, /-d\/--data is required/);
    expectFailure(dynact("quant-report", "-m", model, "-d", text, "--ctx", "41"), 2, /--ctx 41 is longer than the model's context of 40/);
  });
});
