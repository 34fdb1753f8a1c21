// dynact study --quick on stories260K: completes, writes every file, the SVGs are well-formed XML with the
// expected series, the report states each pitfall, and a second run resumes from the cached cells.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { studyMatrix } from "../eval/study/matrix";
import { PLOTS } from "../eval/study/report";
import { haveAssets, shared } from "./assets";
import { dynact } from "./cli-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-study-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Well-formedness: every tag closes in order (the charts use no CDATA, comments or self-nesting tricks). */
function wellFormed(xml: string): boolean {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)([^>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) {
      if (stack.pop() !== name) return false;
    } else stack.push(name);
  }
  return stack.length === 0 && xml.trimStart().startsWith("<svg");
}

test("study --help names every strategy of the full matrix, its targets, and -t", () => {
  const r = dynact("study", "--help");
  expect(r.code).toBe(0);
  const help = r.stdout.replace(/\s+/g, " ");
  const cells = studyMatrix(["m"], { quick: false, predictors: new Map([["m", "m.pred"]]), headPredictors: new Map([["m", "m.heads.pred"]]) });
  const named: Record<string, RegExp> = {
    dense: /MLP strategies \(dense;/, cett: /cett at 0\.05\/0\.1\/0\.2\/0\.3/, "cett-global": /cett-global 0\.2/, tda: /tda 0\.2/,
    cats: /cats, topk, griffin and teal at 30\/50\/70\/90% sparsity/, topk: /cats, topk, griffin and teal at/,
    griffin: /cats, topk, griffin and teal at/, teal: /cats, topk, griffin and teal at/, predictor: /a trained neuron predictor/,
    "heads-norm": /head gates \(norm, topk and a trained head predictor keeping 75\/50% of heads\)/,
    "heads-topk": /head gates \(norm, topk and/, "heads-predictor": /a trained head predictor/,
  };
  for (const family of new Set(cells.map((c) => c.family))) {
    expect(named[family], `no pattern for ${family}`).toBeDefined();
    expect(help, family).toMatch(named[family]);
  }
  expect(help).toMatch(/-t, --tokenizer FILE/);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt", "data/hellaswag_val_1000.jsonl"))("study --quick", () => {
  const args = ["study", "-m", shared("models/stories260K.bin"), "-t", shared("models/tok512.bin"), "-d", shared("data/tinystories_val.txt"),
    "--task", shared("data/hellaswag_val_1000.jsonl"), "-o", dir, "--quick", "--limit", "10"];

  test("completes and writes the report, the JSON and every plot", () => {
    const r = dynact(...args);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ["report.md", "report.json", ...Object.values(PLOTS)]) expect(readdirSync(dir)).toContain(f);
    const report = JSON.parse(readFileSync(path.join(dir, "report.json"), "utf8"));
    expect(report.cells.length).toBe(19);
    const dense = report.cells.find((c: { family: string }) => c.family === "dense");
    expect(dense.perplexity).toBeGreaterThan(3);
    expect(dense.perplexity).toBeLessThan(6);
    const md = readFileSync(path.join(dir, "report.md"), "utf8");
    for (const p of ["Predicting active heads and neurons is hard", "SiLU gives too little real sparsity", "Skipping KV-cache writes"]) {
      expect(md).toContain(p);
    }
    expect(md).toMatch(/\*\*(agrees|disagrees)\*\*/);
  });

  test("the SVGs are well-formed with the expected series", () => {
    const series = (f: string) => [...readFileSync(path.join(dir, f), "utf8").matchAll(/data-series="([^"]+)"/g)].map((m) => m[1]);
    for (const f of Object.values(PLOTS)) expect(wellFormed(readFileSync(path.join(dir, f), "utf8")), f).toBe(true);
    expect(series(PLOTS.pplVsSparsity)).toEqual(["cett", "cett-global", "cats", "topk", "griffin", "tda", "teal", "predictor"]);
    expect(series(PLOTS.predictorRecall)).toEqual(["stories260K.bin"]);
    expect(series(PLOTS.heads)).toEqual(["norm keep", "norm skip", "topk keep", "topk skip", "predictor keep", "predictor skip"]);
    expect(series(PLOTS.layerSparsity)).toEqual(["stories260K.bin"]);
  });

  test("a second run resumes from the cached cells", () => {
    const r = dynact(...args);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/calibrating/);
  });
});
