// Multiple-choice evaluation: the task readers (shared HellaSwag/OpenBookQA files, the original Hugging Face rows,
// the generic format, malformed lines), lm-eval's encode-pair split and stderr, and the scorer on stories260K
// against log-likelihoods computed independently: every choice run from position 0 as one full sequence.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { buildNeuronGate } from "../eval/gate-factory";
import { encodePair, evaluate, meanStderr } from "../eval/multiple-choice";
import { hellaswagPreprocess, readTask, type McItem } from "../eval/tasks";
import { parseGateSpec } from "../models/gates/spec";
import { loadModel, type LoadedModel } from "../models/load";
import { readLlama2cTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { haveAssets, shared } from "./assets";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-mc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeJsonl(name: string, rows: unknown[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n");
  return file;
}

describe("task files", () => {
  test("hellaswag preprocessing is lm-eval's", () => {
    expect(hellaswagPreprocess("  Foo [title] Bar [step] baz  qux ")).toBe("Foo. Bar baz qux");
    // lm-eval strips before removing markers, so a leading marker leaves its space; "   " becomes "  ".
    expect(hellaswagPreprocess("[header] How to x [title] Do y.")).toBe(" How to x. Do y.");
    expect(hellaswagPreprocess("a   b")).toBe("a  b");
  });

  test("generic items; blank lines are skipped", () => {
    const file = writeJsonl("gen.jsonl", [{ context: "A", choices: ["b", "c"], label: 1 }, "", { context: "D", choices: ["e", "f", "g"], label: 0 }]);
    const t = readTask(file);
    expect(t.name).toBe("gen");
    expect(t.items).toEqual([{ context: "A", choices: ["b", "c"], label: 1 }, { context: "D", choices: ["e", "f", "g"], label: 0 }]);
  });

  test("original HellaSwag and Hugging Face OpenBookQA rows are built as lm-eval builds them", () => {
    const file = writeJsonl("raw.jsonl", [
      { activity_label: "Roof shingle removal", ctx_a: "A man is sitting on a roof.", ctx_b: "he", endings: ["a [step] b", "c", "d", "e"], label: "3" },
      { question_stem: "Fog is likely around:", choices: { text: ["a marsh", "a desert"], label: ["A", "B"] }, answerKey: " A" },
    ]);
    expect(readTask(file).items).toEqual([
      { context: "Roof shingle removal: A man is sitting on a roof. He", choices: ["a b", "c", "d", "e"], label: 3 },
      { context: "Fog is likely around:", choices: ["a marsh", "a desert"], label: 0 },
    ]);
  });

  test("malformed lines are errors naming the file and line", () => {
    const cases: [unknown[], RegExp][] = [
      [[{ context: "a", choices: ["b", "c"], label: 0 }, "{not json"], /bad\.jsonl:2: not valid JSON/],
      [[{ prompt: "a", answers: ["b"] }], /bad\.jsonl:1: not a task item: .*"prompt","answers"/],
      [[{ context: "a", choices: ["b", "c"], label: 2 }], /:1: label 2 is not the index/],
      [[{ context: "a", choices: ["b", "c"], label: "x" }], /:1: "label" must be an integer/],
      [[{ context: "a", choices: ["b", 3], label: 0 }], /:1: "choices" must be an array of strings/],
      [[{ context: "a", choices: ["b", ""], label: 0 }], /:1: choice 1 is empty/],
      [[{ ctx: "a", endings: ["b"], label: 0 }], /:1: needs at least 2 choices/],
      [[{ question: 7, choices: ["b", "c"], label: 0 }], /:1: "question" must be a string/],
      [["[1, 2]"], /:1: expected a JSON object/],
      [[""], /bad\.jsonl: no items/],
    ];
    for (const [rows, message] of cases) expect(() => readTask(writeJsonl("bad.jsonl", rows))).toThrow(message);
    expect(() => readTask(path.join(dir, "missing.jsonl"))).toThrow(/missing\.jsonl: no such file/);
  });

  test("mean_stderr is the sample standard deviation over sqrt(n)", () => {
    expect(meanStderr([1, 0, 1, 1])).toBeCloseTo(0.25, 12);
    expect(meanStderr([1])).toBeNull();
  });
});

describe.runIf(haveAssets("data/hellaswag_val_1000.jsonl", "data/openbookqa_test.jsonl"))("shared task files", () => {
  const firstLine = (rel: string) => JSON.parse(readFileSync(shared(rel), "utf8").split("\n")[0]);

  test("hellaswag: ctx is the context, endings the choices", () => {
    const t = readTask(shared("data/hellaswag_val_1000.jsonl"));
    const row = firstLine("data/hellaswag_val_1000.jsonl");
    expect(t.items.length).toBe(1000);
    expect(t.items[0]).toEqual({ context: "Roof shingle removal: A man is sitting on a roof. he", choices: row.endings, label: 3 });
  });

  test("openbookqa: the question stem is the context", () => {
    const t = readTask(shared("data/openbookqa_test.jsonl"));
    const row = firstLine("data/openbookqa_test.jsonl");
    expect(t.items.length).toBe(500);
    expect(t.items[0]).toEqual({ context: row.question, choices: row.choices, label: 1 });
    expect(row.answerKey).toBe("B");
  });
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))("on stories260K", () => {
  const model = shared("models/stories260K.bin");
  const tok = shared("models/tok512.bin");
  const loaded = loadModel(model, { tokenizer: tok });

  // Answers the model cannot miss or cannot find: a likely sentence against junk; a short likely ending whose
  // total wins but loses per character; a right answer that is improbable.
  const items: McItem[] = [
    {
      context: "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
      choices: ["One day, she saw a big dog in the park.", "Zxq vbn mlp qrs.", "Quantum chromodynamics describes hadrons.", "The the the the the."],
      label: 0,
    },
    {
      context: "Tom had a red ball. He",
      choices: ["was happy.", "liked to play with his ball in the park with his friends every day.", "ran.", "said, \"Mom, can I play with my ball?\""],
      label: 1,
    },
    {
      context: "Lily and Ben went to the park. They saw a",
      choices: ["big tree.", "xylophone.", "car", "big slide and a swing. They played on the slide and the swing all day."],
      label: 1,
    },
  ];

  /**
   * log P(" " + choice | BOS, context) from scratch: the whole sequence from position 0, truncated from the left
   * to seqLen + 1 tokens, the context as the prompt; log-softmax in f64.
   */
  function reference({ model: m, tokenizer: t }: LoadedModel, context: string, choice: string): { ll: number; truncated: boolean } {
    const ids = [t.bosId, ...t.encode(`${context} ${choice}`, { bos: false })];
    const start = Math.max(0, ids.length - (m.config.seqLen + 1));
    const w = ids.slice(start);
    const firstTarget = 1 + t.encode(context, { bos: false }).length - start;
    let ll = 0;
    m.beginSequence();
    for (let p = 0; p + 1 < w.length; p++) {
      if (p === firstTarget) m.beginGeneration();
      const logits = m.forward(w[p], p).read();
      if (p + 1 < firstTarget) continue;
      const max = Math.max(...logits);
      const z = logits.reduce((s, x) => s + Math.exp(x - max), 0);
      ll += logits[w[p + 1]] - max - Math.log(z);
    }
    return { ll, truncated: start > 0 };
  }

  const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));

  test("log-likelihoods, acc and acc_norm match a from-scratch computation; prefix reuse changes nothing", () => {
    loaded.model.configureFfn({ gate: null, mode: "mask" });
    const file = writeJsonl("forced.jsonl", items);
    const r = evaluate(loaded, readTask(file));
    const refs = items.map((it) => it.choices.map((c) => reference(loaded, it.context, c).ll));
    r.items.forEach((ir, i) => ir.logliks.forEach((ll, c) => expect(Math.abs(ll - refs[i][c])).toBeLessThan(1e-4)));
    // The items force these predictions (checked on the reference numbers, not on the scorer's).
    expect(refs.map(argmax)).toEqual([0, 0, 0]);
    expect(refs.map((lls, i) => argmax(lls.map((ll, c) => ll / items[i].choices[c].length)))).toEqual([0, 1, 0]);
    expect(r.items.map((ir) => [ir.pred, ir.pred_norm])).toEqual([[0, 0], [0, 1], [0, 0]]);
    expect(r).toMatchObject({ task: "forced", n: 3, acc: 1 / 3, acc_norm: 2 / 3, truncated: 0 });
    expect(r.acc_stderr).toBeCloseTo(meanStderr([1, 0, 0])!, 12);
  });

  test("a task built in code is checked as readTask checks a file's (it scored NaN, a miss or -Infinity)", () => {
    const task = (its: McItem[]) => ({ name: "t", file: "built", items: its });
    const [ok] = items;
    expect(() => evaluate(loaded, task([]))).toThrow(/^built: no items$/); // acc was NaN
    expect(() => evaluate(loaded, task([ok!, { ...ok!, label: 5 }]))).toThrow(/^built: item 2: label 5 is not the index of one of the 4 choices$/);
    expect(() => evaluate(loaded, task([{ ...ok!, choices: ["", "b"], label: 0 }]))).toThrow(/^built: item 1: choice 0 is empty$/);
    expect(() => evaluate(loaded, task([{ ...ok!, choices: ["only"], label: 0 }]))).toThrow(/needs at least 2 choices/);
    expect(() => evaluate(loaded, task([{ ...ok!, label: 0.5 }]))).toThrow(/the label must be an integer index, got 0\.5/);
  });

  test("--limit scores the first N items", () => {
    const r = evaluate(loaded, readTask(writeJsonl("forced.jsonl", items)), { limit: 2 });
    expect(r.n).toBe(2);
    expect(r.items.map((ir) => ir.label)).toEqual([0, 1]);
  });

  test("a prompt-based gate (griffin) sees the context as its prompt; prefix reuse keeps its neurons", () => {
    const gate = buildNeuronGate(parseGateSpec("griffin:0.3"), loaded.model);
    loaded.model.configureFfn({ gate, mode: "mask" });
    try {
      const r = evaluate(loaded, readTask(writeJsonl("forced.jsonl", items)));
      items.forEach((it, i) => it.choices.forEach((c, k) => {
        expect(Math.abs(r.items[i].logliks[k] - reference(loaded, it.context, c).ll)).toBeLessThan(1e-4);
      }));
      loaded.model.configureFfn({ gate: null, mode: "mask" });
      const dense = evaluate(loaded, readTask(writeJsonl("forced.jsonl", items)));
      expect(r.items[0].logliks[0]).not.toBeCloseTo(dense.items[0].logliks[0], 3);
    } finally {
      loaded.model.configureFfn({ gate: null, mode: "mask" });
    }
  });

  test("contexts longer than the model's are cut from the left and counted", () => {
    const short = loadModel(model, { tokenizer: tok, contextLength: 40 });
    const r = evaluate(short, readTask(writeJsonl("forced.jsonl", items)));
    // Items 1 and 3 have choices that do not fit in 40 positions (31 + 31 and 15 + 30 tokens after BOS).
    expect(r.items.map((ir) => ir.truncated)).toEqual([true, false, true]);
    expect(r.truncated).toBe(2);
    items.forEach((it, i) => {
      const refs = it.choices.map((c) => reference(short, it.context, c));
      expect(refs.some((x) => x.truncated)).toBe(r.items[i].truncated);
      r.items[i].logliks.forEach((ll, c) => expect(Math.abs(ll - refs[c].ll)).toBeLessThan(1e-4));
    });
  });

  test("encode pair: trailing spaces of the context move to the continuation", () => {
    const t = readLlama2cTokenizer(tok);
    const moved = encodePair(t, "Tom had a red ball. He ", "was happy.");
    expect(moved).toEqual(encodePair(t, "Tom had a red ball. He", " was happy."));
    expect(moved.context).toEqual(t.encode("Tom had a red ball. He", { bos: false }));
    expect(t.decode(moved.continuation, moved.context.at(-1))).toBe(" was happy.");
  });

  describe.runIf(haveAssets("data/hellaswag_val_1000.jsonl"))("CLI on HellaSwag", () => {
    test("dynact eval --json on 20 items", () => {
      const args = ["eval", "-m", model, "-t", tok, "--task", shared("data/hellaswag_val_1000.jsonl"), "--limit", "20", "--json"];
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.tasks).toHaveLength(1);
      const t = out.tasks[0];
      expect(Object.keys(t).sort()).toEqual(["acc", "acc_norm", "acc_norm_stderr", "acc_stderr", "n", "task", "truncated"]);
      expect(t).toMatchObject({ task: "hellaswag_val_1000", n: 20, truncated: 0 });
      for (const x of [t.acc, t.acc_norm]) expect(x >= 0 && x <= 1).toBe(true);
      const right = Math.round(20 * t.acc);
      expect(t.acc_stderr).toBeCloseTo(meanStderr(Array.from({ length: 20 }, (_, i) => (i < right ? 1 : 0)))!, 12);
      expect(out.ffn.active_fraction).toHaveLength(5);
      expect(r.stderr).toMatch(/hellaswag_val_1000: 20\/20/);
    });
  });

  test("dynact eval: usage and task errors", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, "eval", ...args], { encoding: "utf8" });
    const noTask = run("-m", model, "-t", tok);
    expect(noTask.status).toBe(2);
    expect(noTask.stderr).toMatch(/^dynact: --task is required/);
    const bad = run("-m", model, "-t", tok, "--task", writeJsonl("broken.jsonl", [items[0], "{oops"]));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^dynact: .*broken\.jsonl:2: not valid JSON/);
    const text = run("-m", model, "-t", tok, "--task", writeJsonl("forced.jsonl", items));
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^forced {2}acc 0\.3333 ± 0\.3333 {2}acc_norm 0\.6667 ± 0\.3333 {2}n 3\n/);
  });
});
