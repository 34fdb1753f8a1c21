// dynact study --quick on stories260K: completes, writes every file, the SVGs are well-formed XML with the
// expected series, the report states each pitfall, and a second run resumes from the cached cells.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { studyMatrix } from "../eval/study/matrix";
import { PLOTS, writeReport } from "../eval/study/report";
import { readCachedCell, study, type CellResult } from "../eval/study/study";
import { FormatError } from "../models/formats/format-error";
import { perplexity } from "../eval/perplexity";
import { readTextTokens } from "../eval/text";
import { loadModel } from "../models/load";
import { readLlama2cTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { haveAssets, shared } from "./assets";
import { dynact } from "./cli-harness";
import { sentencePieceTokenizerJson } from "./sentencepiece-json";

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

  test("a resumed run stops at a truncated cached cell, naming it (it was an internal error)", () => {
    const cells = path.join(dir, "cells");
    const file = path.join(cells, readdirSync(cells).sort()[0]!);
    const good = readFileSync(file);
    writeFileSync(file, good.subarray(0, 40));
    try {
      const r = dynact(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`dynact: ${file}: json: `);
    } finally {
      writeFileSync(file, good);
    }
  });
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("study and the tokenizer's BOS", () => {
  // A task of 2 items, fewer than the study's --limit of 5.
  const small = path.join(dir, "small.jsonl");
  writeFileSync(small, [
    { context: "Tom had a red ball. He", choices: ["was happy.", "ran."], label: 0 },
    { context: "Lily saw a big dog.", choices: ["She smiled.", "Zxq."], label: 0 },
  ].map((x) => JSON.stringify(x)).join("\n") + "\n");
  let run: Awaited<ReturnType<typeof study>> | undefined;

  test("every window starts from the tokenizer's BOS (it was id 1 whatever the tokenizer said)", async () => {
    // tok512 as a tokenizer.json whose BOS is </s> (id 2): a vocabulary whose BOS is not 1, as LLaMA-3's is not.
    const tokDir = path.join(dir, "bos2-tokenizer");
    mkdirSync(tokDir, { recursive: true });
    const { json, config } = sentencePieceTokenizerJson(readLlama2cTokenizer(shared("models/tok512.bin")));
    writeFileSync(path.join(tokDir, "tokenizer.json"), JSON.stringify(json));
    writeFileSync(path.join(tokDir, "tokenizer_config.json"), JSON.stringify({ ...config, bos_token: "</s>" }));
    const model = shared("models/stories260K.bin");
    const text = shared("data/tinystories_val.txt");
    const loaded = loadModel(model, { tokenizer: tokDir });
    expect(loaded.tokenizer.bosId).toBe(2);
    const r = await study({
      models: [model], tokenizer: tokDir, text, tasks: [small], outDir: path.join(dir, "bos2"), quick: true, maxTokens: 60, ctx: 16,
      speedSteps: 4, limit: 5,
    });
    run = r;
    const ids = readTextTokens(text, loaded.tokenizer, 60);
    const withBos = perplexity(loaded, ids, { ctx: 16 });
    const withOne = perplexity(loadModel(model, { tokenizer: shared("models/tok512.bin") }), ids, { ctx: 16 }); // BOS 1
    expect(withBos.perplexity).not.toBeCloseTo(withOne.perplexity, 3);
    const dense = r.cells.find((c) => c.family === "dense")!;
    expect(dense.perplexity).toBeCloseTo(withBos.perplexity, 10);
    expect(dense.tokens).toBe(60);
  });

  test("the report says how many items each task had scored, not --limit when a task has fewer", () => {
    expect(run!.cells[0].tasks.map((t) => t.n)).toEqual([2]);
    const out = path.join(dir, "bos2-report");
    mkdirSync(out, { recursive: true });
    writeReport(run!, out);
    const md = readFileSync(path.join(out, "report.md"), "utf8");
    expect(md).toContain("2 items of `small.jsonl`");
    expect(md).not.toContain("5 items of");
  });

  test("a cached cell that is not this cell's result is a FormatError naming the file and the field", async () => {
    // Cells were read back unchecked: a truncated file was "internal error: Unexpected end of JSON input", an edited
    // one a TypeError in the report.
    const cells = path.join(dir, "bos2", "cells");
    const file = path.join(cells, readdirSync(cells).filter((f) => f.endsWith(".json")).sort()[0]!); // the same cell every run
    const good = JSON.parse(readFileSync(file, "utf8")) as CellResult;
    const { model, family, target, ffnGate, headGate, kvPolicy } = good;
    const cell = { model, family, target, ffnGate, headGate, kvPolicy };
    const nLayers = good.ffn.active_fraction.length;
    const scratch = path.join(dir, "cell.json");
    const fieldOf = (text: string) => {
      writeFileSync(scratch, text);
      try {
        readCachedCell(scratch, cell, nLayers, 1);
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
        expect((e as FormatError).file).toBe(scratch);
        expect((e as Error).message).toMatch(/\(a cached study cell: delete it to run the cell again\)$/);
        return (e as FormatError).field;
      }
      return "accepted";
    };
    const edited = (edit: (c: Record<string, any>) => void) => {
      const c = JSON.parse(JSON.stringify(good));
      edit(c);
      return JSON.stringify(c);
    };
    expect(fieldOf(JSON.stringify(good))).toBe("accepted");
    expect(fieldOf(edited((c) => (c.perplexity = null)))).toBe("accepted"); // how JSON keeps an infinite perplexity
    expect(fieldOf(JSON.stringify(good).slice(0, 40))).toBe("json");
    for (const text of ["null", "[]", "{}"]) expect(fieldOf(text)).not.toBe("accepted");
    expect(fieldOf(edited((c) => (c.ffnGate = `${c.ffnGate}-other`)))).toBe("ffnGate"); // not this cell's, whichever it is
    expect(fieldOf(edited((c) => (c.tasks = "x")))).toBe("tasks");
    expect(fieldOf(edited((c) => c.tasks.push(c.tasks[0])))).toBe("tasks");
    expect(fieldOf(edited((c) => (c.tasks[0].n = -1)))).toBe("tasks[0].n");
    expect(fieldOf(edited((c) => (c.ffn.active_fraction = new Array(3 * nLayers).fill(0.5))))).toBe("ffn.active_fraction");
    expect(fieldOf(edited((c) => (c.ffn.cett[1] = "0.2")))).toBe("ffn.cett[1]");
    expect(fieldOf(edited((c) => delete c.attention))).toBe("attention");
    expect(fieldOf(edited((c) => (c.attention.kv_hole_fraction = undefined)))).toBe("attention.kv_hole_fraction");
    expect(fieldOf(edited((c) => (c.ffn.oracle = { recall: [] })))).toBe("ffn.oracle.recall");
  });
});
