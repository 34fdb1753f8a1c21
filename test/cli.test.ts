// The dynact command as a user runs it: the built bundle in a child process. Contract: stdout carries only the
// result, failures are one `dynact: …` line on stderr with exit 1, bad usage exits 2.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test, vi } from "vitest";
import { FIXTURES, haveAssets, shared } from "./assets";
import * as calibrate from "../cli/commands/calibrate";
import * as convert from "../cli/commands/convert";
import * as evalCommand from "../cli/commands/eval";
import * as fitPredictors from "../cli/commands/fit-predictors";
import * as generate from "../cli/commands/generate";
import * as inspect from "../cli/commands/inspect";
import * as logits from "../cli/commands/logits";
import * as perplexity from "../cli/commands/perplexity";
import * as quantReport from "../cli/commands/quant-report";
import * as relufy from "../cli/commands/relufy";
import * as study from "../cli/commands/study";
import * as train from "../cli/commands/train";
import { logLine, progressText } from "../cli/log";
import { CLI, dynact, expectFailure } from "./cli-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("no command prints the usage and exits 2; --help exits 0", () => {
  expect(dynact().code).toBe(2);
  const h = dynact("--help");
  expect(h.code).toBe(0);
  expect(h.stdout).toMatch(/generate/);
  expect(dynact("generate", "--help").stdout).toMatch(/--temperature/);
  // -t takes every tokenizer loadModel reads, as the README says (it named only tokenizer.bin and .gguf).
  for (const cmd of ["generate", "relufy", "train"]) expect(dynact(cmd, "--help").stdout, cmd).toMatch(/-t, --tokenizer FILE +tokenizer\.bin, \.gguf, tokenizer\.json or a folder with one/);
});

test("usage errors exit 2", () => {
  expectFailure(dynact("frobnicate"), 2, /unknown command/);
  // No SUITE: kernels, as DESIGN.md's `bench [kernels|decode]` has it (an option kernels does not take proves it
  // without running the benchmark).
  expectFailure(dynact("bench", "--rounds", "3"), 2, /--rounds is not an option of bench kernels \(it takes none\)/);
  expect(dynact("bench", "--help").code).toBe(0);
  // an option a suite does not take was silently ignored (these all fail before any benchmark runs)
  expectFailure(dynact("bench", "attention", "--rounds", "3"), 2, /--rounds is not an option of bench attention \(it takes none\)/);
  expectFailure(dynact("bench", "ffn", "--steps", "3"), 2, /--steps is not an option of bench ffn \(it takes --shapes, --dtypes\)/);
  expectFailure(dynact("bench", "train", "--threads", "2"), 2, /--threads is not an option of bench train/);
  expectFailure(dynact("generate"), 2, /-m\/--model is required/);
  expectFailure(dynact("generate", "-m", "x.bin", "--bogus"), 2, /bogus/);
  expectFailure(dynact("generate", "-m", "x.bin", "-n", "abc"), 2, /-n\/--steps must be/);
  expectFailure(dynact("generate", "-m", "x.bin", "-n", "0x10"), 2, /-n\/--steps must be .*, got '0x10'/); // read as 16
  expectFailure(dynact("generate", "-m", "x.bin", "--top-p", " 0.5"), 2, /--top-p must be/);
  expectFailure(dynact("generate", "-m", "x.bin", "--temperature", "-1"), 2, /--temperature/);
  expectFailure(dynact("generate", "-m", "x.bin", "--temperature", "1e39"), 2, /--temperature must be a number from 0 to 3\.4e38, got '1e39'/); // infinite in f32
  expectFailure(dynact("generate", "-m", "x.bin", "--act", "tanh"), 2, /--act must be one of/);
  expectFailure(dynact("generate", "-m", "x.bin", "--down-dtype", "f16"), 2, /--down-dtype applies to --ffn-mode gather/); // was ignored
  expectFailure(dynact("generate", "-m", "x.bin", "-t", ""), 2, /--tokenizer is given an empty value/); // fell back to tokenizer.bin beside the model
  expectFailure(dynact("perplexity", "-m", "x.bin", "-d", "t.txt", "--ffn-gate="), 2, /--ffn-gate is given an empty value/);
  expectFailure(dynact("study", "-m", "x.bin", "-m", "", "-d", "t.txt", "-o", "out"), 2, /--model is given an empty value/);
  expectFailure(dynact("perplexity", "-m", "x.bin", "-d", "t.txt", "--prompt-tokens", "8"), 2, /--prompt-tokens applies to griffin\/tda gates; with --ffn-gate dense/);
  expectFailure(dynact("generate", "-m", "x.bin", "--kv-policy", "skip"), 2, /--kv-policy applies to the heads a --head-gate skips/); // were ignored
  expectFailure(dynact("perplexity", "-m", "x.bin", "-d", "t.txt", "--ffn-gate", "topk:0.5", "--calib-text", "t.txt"), 2,
    /--calib-text\/--calib-tokens calibrate cats, cett, cett-global, teal gates; --ffn-gate topk takes no calibration/);
  expectFailure(dynact("eval", "-m", "x.bin", "--task", "t.jsonl", "--calib-tokens", "9"), 2, /--ffn-gate dense takes no calibration/);
  const fit = ["fit-predictors", "-m", "x.bin", "-d", "t.txt", "-o", "p.bin"];
  expectFailure(dynact(...fit, "--heads", "--label", "topk:0.3"), 2, /--label is for neuron predictors/); // were ignored
  expectFailure(dynact(...fit, "--heads", "--lookahead"), 2, /--lookahead is for neuron predictors/);
  expectFailure(dynact(...fit, "--keep", "0.3"), 2, /--keep is for head predictors \(--heads\)/);
  // a malformed hf: name is a bad value (it exited 1), found before the cache or the network
  expectFailure(dynact("inspect", "-m", "hf:just-a-name"), 2, /hf:just-a-name: expected hf:OWNER\/REPO or hf:OWNER\/REPO\/FILE/);
  expectFailure(dynact("generate", "-m", "x.bin", "--tokenizer=hf:a/../b"), 2, /expected hf:OWNER\/REPO/);
  expectFailure(dynact("logits", "-m", "x.bin"), 2, /--prompt is required/);
});

test("--threads names its range when out of it", () => {
  expectFailure(dynact("generate", "-m", "x.bin", "--threads", "1000"), 2, /--threads must be an integer from 1 to 256, got '1000'/);
  // a usage error, before the (missing) model is opened
  expectFailure(dynact("perplexity", "-m", "x.bin", "-d", "t.txt", "--threads", "0"), 2, /--threads must be an integer from 1 to 256, got '0'/);
  expectFailure(dynact("eval", "-m", "x.bin", "--task", "t.jsonl", "--threads", "0"), 2, /--threads must be/);
  // bench takes a list; 1000 would start 999 workers
  expectFailure(dynact("bench", "decode", "--threads", "1,1000"), 2, /--threads must be comma-separated integers from 1 to 256, got '1000'/);
});

test("a negative number is an option's value, checked as any other; a missing value says so", () => {
  expectFailure(dynact("generate", "-m", "x.bin", "-n", "-1"), 2, /-n\/--steps must be a non-negative integer, got '-1'/);
  expectFailure(dynact("generate", "-m", "x.bin", "--top-k", "-1"), 2, /--top-k must be a non-negative integer, got '-1'/);
  expectFailure(dynact("generate", "-m", "x.bin", "--temperature", "-.5"), 2, /--temperature must be a number from 0 to 3\.4e38, got '-\.5'/);
  expectFailure(dynact("perplexity", "-m", "x.bin", "-d", "t.txt", "--max-tokens", "-3"), 2, /--max-tokens must be a positive integer, got '-3'/);
  expectFailure(dynact("bench", "decode", "--rounds", "-2"), 2, /--rounds must be a positive integer, got '-2'/);
  // An option followed by another option: Node's whole hint, on the one line.
  const r = dynact("generate", "-m", "x.bin", "-n", "--json");
  expectFailure(r, 2, /^dynact: Option '-n' argument is ambiguous\. Did you forget to specify the option argument for '-n'\? .*'--steps=-XYZ'/);
});

test("every command accepts exactly the options its --help lists", async () => {
  const commands = { generate, inspect, logits, perplexity, eval: evalCommand, calibrate, "fit-predictors": fitPredictors, convert,
    "quant-report": quantReport, study, relufy, train };
  // The usage paragraph's options (with -m, -t, -d, -o, -p, -n for their long names), and every option line's.
  const short: Record<string, string> = { m: "model", t: "tokenizer", d: "data", o: "output", p: "prompt", n: "steps" };
  const listed = (help: string) => {
    const names = new Set<string>();
    const usage = help.slice(0, help.indexOf("\n\n"));
    for (const m of usage.matchAll(/--([a-z][a-z0-9-]*)/g)) names.add(m[1]!);
    for (const m of usage.matchAll(/(?:^|[\s[])-([a-z])\b/g)) if (short[m[1]!]) names.add(short[m[1]!]!);
    for (const m of help.matchAll(/^\s+(?:-[a-z], )?--([a-z][a-z0-9-]*)(?=\s{2,}| [A-Zλατ]|$)/gm)) names.add(m[1]!);
    return names;
  };
  const lists = Object.fromEntries(Object.entries(commands).map(([name, c]) => [name, listed(c.help)]));
  const every = new Set(Object.values(lists).flatMap((l) => [...l]));
  // Without -m nothing runs: an accepted option ends in a usage error about something else.
  const rejection = async (run: (argv: string[]) => Promise<void>, option: string) =>
    run([`--${option}`]).then(() => "", (e: Error) => e.message);
  const wrong: string[] = [];
  for (const [name, c] of Object.entries(commands)) {
    for (const option of every) {
      const unknown = /Unknown option|is an option of dynact/.test(await rejection(c.run, option));
      if (lists[name]!.has(option) === unknown) wrong.push(`${name} --${option}: ${unknown ? "listed but rejected" : "accepted but not listed"}`);
    }
  }
  expect(wrong).toEqual([]);
  expect(lists.generate).toContain("calib-tokens");
});

test("on a terminal, a line written while a progress line is open starts a line of its own", () => {
  let out = "";
  const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((out += String(chunk)), true));
  try {
    progressText("training: 1/4 (25%)", false);
    logLine("step 2: held-out loss 5.3"); // was appended to the progress line
    progressText("training: 4/4 (100%)", true);
    logLine("wrote r.bin");
    progressText("cell 3/19", false);
    logLine("calibrating cats:0.5", true); // study's log lines take the cell line's place
    progressText("fitting: 0/5 (0%)", false);
    logLine("dynact: an error");
  } finally {
    write.mockRestore();
  }
  expect(out).toBe("\rtraining: 1/4 (25%)\x1b[K\nstep 2: held-out loss 5.3\n\rtraining: 4/4 (100%)\x1b[K\nwrote r.bin\n" +
    "\rcell 3/19\x1b[K\r\x1b[Kcalibrating cats:0.5\n\rfitting: 0/5 (0%)\x1b[K\ndynact: an error\n");
});

test("a missing model file exits 1 with one line", () => {
  expectFailure(dynact("generate", "-m", path.join(dir, "missing.bin")), 1, /no such file/);
  expectFailure(dynact("inspect", "-m", dir), 1, /is a directory/);
});

test("a file that is no model says what it was read as", () => {
  const text = path.join(dir, "story.txt");
  writeFileSync(text, "Once upon a time, there was a little girl named Lily.\n".repeat(20));
  expectFailure(dynact("inspect", "-m", text), 1, /story\.txt: dim: must be a positive integer, got \d+ \(not a GGUF file, so read as a llama2\.c checkpoint\)/);
  const st = path.join(dir, "model.safetensors");
  writeFileSync(st, Buffer.alloc(64));
  // was "hiddenDim: must be a positive integer, got 0"
  expectFailure(dynact("inspect", "-m", st), 1, /model\.safetensors: a \.safetensors file holds no model configuration: pass the folder with its config\.json/);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/stories260K.gguf", "models/tok512.bin", "models/llama2-tokenizer.bin"))("on stories260K", () => {
  const model = shared("models/stories260K.bin");
  const tok = shared("models/tok512.bin");
  const golden = JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-greedy.json"), "utf8"));

  test("generate --json at temperature 0 reproduces run.c's tokens", () => {
    const c = golden.cases[0];
    const r = dynact("generate", "-m", model, "-t", tok, "-p", c.prompt, "-n", "512", "--temperature", "0", "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.prompt_tokens).toEqual(c.prompt_ids);
    expect(out.tokens).toEqual(c.generated);
    expect(out.text.startsWith(", there was a little girl named Lily.")).toBe(true);
    expect(out.tokens_per_second).toBeGreaterThan(0);
  });

  test("generate writes only the continuation to stdout, statistics to stderr", () => {
    const args = ["generate", "-m", model, "-t", tok, "-p", "Once upon a time", "-n", "20", "--temperature", "0"];
    const r = dynact(...args);
    expect(r.code).toBe(0);
    const { text } = JSON.parse(dynact(...args, "--json").stdout);
    expect(text.startsWith(", there was a little girl named Lily.")).toBe(true);
    expect(r.stdout).toBe(`${text}\n`);
    expect(r.stderr).toMatch(/tokens\/s/);
  });

  test("generate under a gate prints its sparsity to stderr (the continuation alone on stdout)", () => {
    const args = ["generate", "-m", model, "-t", tok, "-p", "Once upon a time", "-n", "20", "--temperature", "0"];
    const r = dynact(...args, "--ffn-gate", "topk:0.5", "--head-gate", "topk:0.5", "--kv-policy", "skip");
    expect(r.code).toBe(0);
    const out = JSON.parse(dynact(...args, "--ffn-gate", "topk:0.5", "--head-gate", "topk:0.5", "--kv-policy", "skip", "--json").stdout);
    expect(r.stdout).toBe(`${out.text}\n`);
    expect(r.stderr).toMatch(/^active neurons per layer: 50\.0% 50\.0% 50\.0% 50\.0% 50\.0%$/m);
    expect(r.stderr).toMatch(/^FFN multiply-adds done: /m);
    expect(r.stderr).toMatch(/^active heads per layer: 50\.0% 50\.0% 50\.0% 50\.0% 50\.0%; KV holes: /m);
    // Dense: the one statistics line only.
    expect(dynact(...args).stderr).not.toMatch(/active neurons|active heads/);
  });

  test("sampling is deterministic for a seed", () => {
    const run = (seed: string) =>
      JSON.parse(dynact("generate", "-m", model, "-t", tok, "-n", "40", "--seed", seed, "--json").stdout).tokens;
    expect(run("7")).toEqual(run("7"));
    expect(run("7")).not.toEqual(run("8"));
  });

  test("logits --json match run.c within 1e-4", () => {
    const c = golden.cases[1];
    const r = dynact("logits", "-m", model, "-t", tok, "-p", c.prompt, "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ids).toEqual(c.prompt_ids);
    const diff = Math.max(...out.logits.map((v: number, i: number) => Math.abs(v - c.last_logits[i])));
    expect(diff).toBeLessThan(1e-4);
  });

  test("logits --top K --json carries the K largest (--top was dropped under --json)", () => {
    const r = dynact("logits", "-m", model, "-t", tok, "-p", "Once upon a", "--top", "3", "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { logits: number[]; top: { id: number; logit: number; piece: string }[] };
    expect(out.logits).toHaveLength(512);
    const sorted = [...out.logits].sort((a, b) => b - a);
    expect(out.top.map((t) => t.logit)).toEqual(sorted.slice(0, 3));
    expect(out.top.map((t) => out.logits[t.id])).toEqual(sorted.slice(0, 3));
    const text = dynact("logits", "-m", model, "-t", tok, "-p", "Once upon a", "--top", "3").stdout.trim().split("\n");
    expect(text).toEqual(out.top.map((t) => `${t.id}\t${t.logit}\t${JSON.stringify(t.piece)}`));
  });

  test("a reader that stops early (generate | head) ends the run quietly, without a stack trace", async () => {
    const child = spawn(process.execPath, [CLI, "generate", "-m", model, "-t", tok, "-n", "300", "--temperature", "0"]);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(code).toBe(0);
  });

  test("inspect reports the header", () => {
    const r = dynact("inspect", "-m", model, "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512 });
    expect(out.tied_output).toBe(true);
  });

  test("tokenizer.bin beside the model is found; none is an error", () => {
    const m = path.join(dir, "m.bin");
    copyFileSync(model, m);
    expectFailure(dynact("generate", "-m", m, "-n", "3"), 1, /pass -t TOKENIZER/);
    copyFileSync(tok, path.join(dir, "tokenizer.bin"));
    expect(dynact("generate", "-m", m, "-n", "3", "--temperature", "0").code).toBe(0);
  });

  test("a mismatched tokenizer is refused", () => {
    expectFailure(dynact("generate", "-m", model, "-t", shared("models/llama2-tokenizer.bin")), 1, /wrong tokenizer/);
  });

  test("a truncated or oversized checkpoint is refused", () => {
    const bytes = readFileSync(model);
    const t = path.join(dir, "trunc.bin");
    writeFileSync(t, bytes.subarray(0, bytes.length - 7));
    expectFailure(dynact("generate", "-m", t, "-t", tok), 1, /size/);
    writeFileSync(t, Buffer.concat([bytes, Buffer.alloc(16)]));
    expectFailure(dynact("inspect", "-m", t), 1, /size/);
  });

  test("study checks its inputs before it makes its output folder (a typo left an empty folder)", () => {
    const out = path.join(dir, "study-out", "nested");
    const text = path.join(dir, "study-text.txt");
    writeFileSync(text, "Once upon a time there was a cat.\n");
    expectFailure(dynact("study", "-m", path.join(dir, "no-model.bin"), "-t", tok, "-d", text, "-o", out), 1, /no-model\.bin/);
    expectFailure(dynact("study", "-m", model, "-t", tok, "-d", text, "--task", path.join(dir, "no-task.jsonl"), "-o", out), 1, /no-task\.jsonl/);
    expectFailure(dynact("study", "-m", model, "-t", tok, "-d", path.join(dir, "no-text.txt"), "-o", out), 1, /no-text\.txt: no such file/);
    expect(existsSync(path.join(dir, "study-out"))).toBe(false);
  });

  test("impossible headers are refused", () => {
    const bytes = Buffer.from(readFileSync(model));
    const bad = path.join(dir, "bad.bin");
    bytes.writeInt32LE(3, 16); // 3 KV heads do not divide 8 heads
    writeFileSync(bad, bytes);
    expectFailure(dynact("generate", "-m", bad, "-t", tok), 1, /KV heads/);
  });

  test("a broken tokenizer file is refused", () => {
    const t = path.join(dir, "tok-trunc.bin");
    writeFileSync(t, readFileSync(tok).subarray(0, 1000));
    expectFailure(dynact("generate", "-m", model, "-t", t), 1, /tok-trunc\.bin/);
  });

  test("a prompt longer than the context is refused", () => {
    expectFailure(dynact("generate", "-m", model, "-t", tok, "-p", "Once upon a time", "--ctx", "3"), 1, /longer than the context/);
    expectFailure(dynact("logits", "-m", model, "-t", tok, "-p", "word ".repeat(600)), 1, /longer than the context/);
  });

  test("an output that cannot be written fails before any work, as one line naming it", () => {
    const text = shared("data/tinystories_val.txt");
    const missing = path.join(dir, "no-such-dir");
    const fit = ["-m", model, "-t", tok, "-d", text, "--max-tokens", "64"];
    const cases: [string[], RegExp][] = [
      [["calibrate", ...fit, "--ffn-gate", "cats:0.5", "-o", path.join(missing, "c.json")], /-o .*no-such-dir.c\.json: no such directory/],
      [["calibrate", ...fit, "--ffn-gate", "cats:0.5", "-o", dir], /-o .*: is a directory, expected a file/],
      [["fit-predictors", ...fit, "-o", path.join(missing, "p.bin")], /no such directory/],
      [["convert", "-m", model, "--to", "gguf", "-o", path.join(missing, "m.gguf")], /no such directory/],
      [["convert", "-m", model, "--to", "safetensors", "-o", model], /is a file, expected a directory/],
      [["relufy", "-m", model, "-t", tok, "-d", text, "--steps", "1", "-o", path.join(missing, "r.bin")], /no such directory/],
      [["relufy", "-m", model, "-t", tok, "-d", text, "--steps", "1", "-o", path.join(dir, "r.bin"), "--checkpoint", dir], /--checkpoint .*: is a directory/],
      [["quant-report", ...fit, "--keep", model], /--keep .*: is a file, expected a directory/],
      [["study", "-m", model, "-t", tok, "-d", text, "-o", model], /-o .*: is a file, expected a directory/],
    ];
    for (const [args, pattern] of cases) {
      const r = dynact(...args);
      expectFailure(r, 1, pattern);
      expect(r.stderr, args[0]).not.toMatch(/tracing|training|internal error/); // refused before any work
    }
    expect(existsSync(missing)).toBe(false);
  });

  test("a file system error while writing is one line naming the file, not an internal error", () => {
    const hf = path.join(dir, "hf-blocked");
    mkdirSync(path.join(hf, "model.safetensors"), { recursive: true }); // where the weights go is a folder
    // (the GGUF, whose own tokenizer gives config.json its ids: from the .bin, a note would come first)
    expectFailure(dynact("convert", "-m", shared("models/stories260K.gguf"), "--to", "safetensors", "-o", hf), 1, /model\.safetensors: is a directory$/m);
  });

  test("--ctx outside what a command can use is a usage error, before any work", () => {
    const text = shared("data/tinystories_val.txt");
    const fit = ["-m", model, "-t", tok, "-d", text, "--max-tokens", "64"];
    // Windows of one position would trace BOS alone: calibrate fitted thresholds to it and reported success.
    expectFailure(dynact("calibrate", ...fit, "--ffn-gate", "cats:0.5", "-o", path.join(dir, "c.json"), "--ctx", "1"), 2, /--ctx must be an integer >= 2, got '1'/);
    expectFailure(dynact("fit-predictors", ...fit, "--heads", "-o", path.join(dir, "h.pred"), "--ctx", "1"), 2, /--ctx must be an integer >= 2/);
    expectFailure(dynact("calibrate", ...fit, "--ffn-gate", "cats:0.5", "-o", path.join(dir, "c.json"), "--ctx", "513"), 2, /--ctx 513 is longer than the model's context of 512/);
    expectFailure(dynact("generate", "-m", model, "-t", tok, "--ctx", "513"), 2, /--ctx 513 is longer than the model's context of 512/);
    // study's griffin and tda cells need a prompt position and a scored one after BOS (--ctx 2 failed after 3 cells)
    expectFailure(dynact("study", ...fit, "-o", path.join(dir, "study"), "--ctx", "2"), 2, /--ctx must be an integer >= 3, got '2'/);
    expect(existsSync(path.join(dir, "c.json"))).toBe(false);
  });

  test("calibrate's per-layer fitting progress reaches its end", () => {
    const r = dynact("calibrate", "-m", model, "-t", tok, "-d", shared("data/tinystories_val.txt"), "--max-tokens", "64",
      "--ffn-gate", "cett:0.2", "-o", path.join(dir, "cett.json"));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/fitting: 5\/5 \(100%\)\nwrote /); // stopped at 4/5: on a terminal 'wrote' joined that line
  });

  test("study on a text too short to calibrate says so", () => {
    const short = path.join(dir, "short.txt");
    writeFileSync(short, "Once upon a time, there was a little girl named Lily.");
    // was "no calibration tokens"
    expectFailure(dynact("study", "-m", model, "-t", tok, "-d", short, "-o", path.join(dir, "study-short"), "--quick"), 1,
      /short\.txt: its \d+ tokens leave none to calibrate on after the 1024 evaluation tokens \(--max-tokens\)/);
  });

  test("perplexity refuses a --prompt-tokens that leaves nothing to gate", () => {
    // The whole window was prompt: the dense perplexity came out under the gate's name.
    const args = ["perplexity", "-m", model, "-t", tok, "-d", shared("data/tinystories_val.txt"), "--max-tokens", "32", "--ffn-gate", "griffin:0.5"];
    expectFailure(dynact(...args, "--ctx", "16", "--prompt-tokens", "15"), 2, /--prompt-tokens 15 leaves no position after the prompt in windows of 16 \(at most 14\)/);
    expectFailure(dynact(...args, "--prompt-tokens", "600"), 2, /in windows of 512/);
    const r = dynact(...args, "--ctx", "16", "--prompt-tokens", "14", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).ffn.active_fraction[0]).toBeLessThan(1);
  });

  test("-n beyond the context is cut, with a note", () => {
    const r = dynact("generate", "-m", model, "-t", tok, "-p", "Lily and Ben", "-n", "5000", "--temperature", "0", "--ctx", "16", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).tokens.length).toBe(16 - 5 + 1);
    expect(r.stderr).toMatch(/cut to 12/);
  });
});
