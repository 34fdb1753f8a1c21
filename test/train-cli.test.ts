// dynact relufy / dynact train as a user runs them (the built bundle in a child process), on a tiny random
// model: the output records its activation, the same seed gives the same bytes, a resumed run keeps its
// options, and bad usage exits 2.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";
import { randomTensor } from "../bench/random-model";
import type { LlamaConfig } from "../models/config";
import { writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { openCheckpoint } from "../models/load";
import { XorShiftStar } from "../models/sampler";
import { forgeTrainCheckpoint } from "./train-util";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-train-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A llama2.c tokenizer: the special and byte pieces, then " " (the encoder's dummy prefix) and eight letters.
const pieces = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`),
  " ", ..."abcdefgh"];
const tokenizer = path.join(dir, "tok.bin");
writeFileSync(tokenizer, Buffer.concat([Buffer.from(Int32Array.of(8).buffer),
  ...pieces.map((p) => Buffer.concat([Buffer.from(Float32Array.of(0).buffer), Buffer.from(Int32Array.of(p.length).buffer), Buffer.from(p, "latin1")]))]));

const config: LlamaConfig = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: pieces.length, seqLen: 16,
  ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
const model = path.join(dir, "tiny.bin");
writeLlama2cCheckpoint(model, config, (n) => randomTensor(config, n, 1), { version: 0, tied: true });
// Letters encode to one token each: 6000 tokens, of which 4096 are evaluation tokens never trained on.
const text = path.join(dir, "text.txt");
const rng = new XorShiftStar(5);
writeFileSync(text, Array.from({ length: 6000 }, () => "abcdefgh"[rng.nextU32() % 8]).join(""));

function dynact(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const common = ["-m", model, "-t", tokenizer, "-d", text, "--steps", "4", "--eval-every", "2", "--batch", "2", "--seq", "8",
  "--heldout", "64", "--seed", "3"];

test("relufy writes a ReLU model (sidecar), a checkpoint and a JSON summary; the same seed gives the same bytes", () => {
  const [a, b] = ["a.bin", "b.bin"].map((f) => path.join(dir, f));
  const ra = dynact("relufy", ...common, "--l1", "0.1", "-o", a, "--json");
  expect(ra.code, ra.stderr).toBe(0);
  const summary = JSON.parse(ra.stdout);
  expect(summary).toMatchObject({ output: a, format: "llama2c", activation: "relu", relu_after_norm: false });
  expect(summary.zero_fraction).toHaveLength(2);
  expect(Number.isFinite(summary.heldout_loss)).toBe(true);
  expect(ra.stderr).toMatch(/held-out loss/);
  expect(ra.stderr).toMatch(/tok\/s/);
  expect(openCheckpoint(a).config.activation).toBe("relu");
  expect(existsSync(`${a}.ckpt`)).toBe(true);
  expect(dynact("relufy", ...common, "--l1", "0.1", "-o", b).code).toBe(0);
  expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
});

test("--resume continues the saved run (weights from the checkpoint) and refuses a different option", () => {
  const out = path.join(dir, "r.bin");
  expect(dynact("relufy", ...common, "-o", out).code).toBe(0);
  const again = path.join(dir, "r2.bin");
  expect(dynact("relufy", ...common, "-o", again, "--resume", `${out}.ckpt`).code).toBe(0);
  expect(readFileSync(again).equals(readFileSync(out))).toBe(true);
  const bad = dynact("relufy", ...common, "--lr", "0.5", "-o", again, "--resume", `${out}.ckpt`);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--lr 0\.5 differs from the checkpoint's/);
});

test("--resume checks the checkpoint's options and sizes against their rules and -m, naming the file and the field", () => {
  // They were used as found: steps 10^12 ran on without end, eval-every 0 was taken, step -5 trained on NaN losses,
  // and a checkpoint of other sizes was built before its parameter count was compared (2^24 layers: out of heap).
  const out = path.join(dir, "forge.bin");
  expect(dynact("relufy", ...common, "-o", out).code).toBe(0);
  const forged = path.join(dir, "forged.ckpt");
  const resume = (edit: (m: Record<string, any>) => void) => {
    forgeTrainCheckpoint(`${out}.ckpt`, forged, edit);
    const r = dynact("relufy", ...common, "-o", path.join(dir, "forge2.bin"), "--resume", forged);
    expect(r.code, r.stderr).toBe(1);
    return r.stderr.trim();
  };
  expect(resume((m) => (m.options.steps = 1e12))).toBe(`dynact: ${forged}: options.steps: 1000000000000 is not a positive integer up to 2097152 (as --steps takes)`);
  expect(resume((m) => (m.options.evalEvery = 0))).toBe(`dynact: ${forged}: options.evalEvery: 0 is not a positive integer (as --eval-every takes)`);
  expect(resume((m) => (m.options.seq = 64))).toBe(`dynact: ${forged}: options.seq: 64 is longer than the model's context of 16`);
  expect(resume((m) => (m.step = 9))).toBe(`dynact: ${forged}: step: 9 is past the run's 4 steps`);
  expect(resume((m) => (m.config.vocabSize += 1))).toMatch(/: params: \d+, but a model of its config has \d+$/);
  // A whole checkpoint of another model (its own sizes and parameters) with this -m.
  const other = path.join(dir, "other.bin");
  writeLlama2cCheckpoint(other, { ...config, hiddenDim: 32 }, (n) => randomTensor({ ...config, hiddenDim: 32 }, n, 2), { version: 0, tied: true });
  const otherOut = path.join(dir, "other-relu.bin");
  expect(dynact("relufy", ...common.map((a) => (a === model ? other : a)), "-o", otherOut).code).toBe(0);
  const r = dynact("relufy", ...common, "-o", path.join(dir, "forge3.bin"), "--resume", `${otherOut}.ckpt`);
  expect(r.code).toBe(1);
  expect(r.stderr.trim()).toBe(`dynact: ${otherOut}.ckpt: config.hiddenDim: 32, but ${model} has 24: resume with the -m the run started from`);
});

test("relufy --stage2 to GGUF records both ReLUs; train keeps SiLU; --stage2 is not a train option", () => {
  const g = path.join(dir, "s2.gguf");
  expect(dynact("relufy", ...common, "--stage2", "-o", g).code).toBe(0);
  expect(openCheckpoint(g).config).toMatchObject({ activation: "relu", reluAfterNorm: true });
  const t = path.join(dir, "t.bin");
  expect(dynact("train", ...common, "-o", t).code).toBe(0);
  expect(openCheckpoint(t).config.activation).toBe("silu");
  expect(existsSync(`${t}.json`)).toBe(false);
  expect(dynact("train", ...common, "--stage2", "-o", t).code).toBe(2);
});

test("--distill and --synthetic: recorded in the summary, the same seed gives the same bytes, a resumed run keeps them", () => {
  const [a, b, r] = ["da.bin", "db.bin", "dr.bin"].map((f) => path.join(dir, f));
  const args = [...common, "--l1", "0.1", "--distill", "0.7", "--distill-temp", "2", "--synthetic", "300"];
  const ra = dynact("relufy", ...args, "-o", a, "--json");
  expect(ra.code, ra.stderr).toBe(0);
  expect(JSON.parse(ra.stdout).options).toMatchObject({ distill: 0.7, distillTemp: 2, synthetic: 300 });
  expect(ra.stderr).toMatch(/synthetic text: \d+ stories from .* \d+ tokens/);
  expect(ra.stderr).toMatch(/ kl \d/);
  // 6000 text tokens − 4096 evaluation − 64 held-out, plus at least 300 synthetic ones
  const trainTokens = Number(/relufy: relu MLP; (\d+) training tokens/.exec(ra.stderr)![1]);
  expect(trainTokens).toBeGreaterThanOrEqual(1840 + 300);
  expect(dynact("relufy", ...args, "-o", b).code).toBe(0);
  expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  // Distillation changes the run; so does the synthetic text.
  const plain = path.join(dir, "dp.bin");
  expect(dynact("relufy", ...common, "--l1", "0.1", "-o", plain).code).toBe(0);
  expect(readFileSync(plain).equals(readFileSync(a))).toBe(false);
  const noSyn = path.join(dir, "dn.bin");
  expect(dynact("relufy", ...common, "--l1", "0.1", "--distill", "0.7", "--distill-temp", "2", "-o", noSyn).code).toBe(0);
  expect(readFileSync(noSyn).equals(readFileSync(a))).toBe(false);
  // Resuming from the last checkpoint (step 4 of 4) writes the same model; a different α is refused.
  expect(dynact("relufy", ...common, "-o", r, "--resume", `${a}.ckpt`).code).toBe(0);
  expect(readFileSync(r).equals(readFileSync(a))).toBe(true);
  const bad = dynact("relufy", ...common, "--distill", "0.5", "-o", r, "--resume", `${a}.ckpt`);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--distill 0\.5 differs from the checkpoint's 0\.7/);
});

test("relufy --help documents the new options", () => {
  const h = dynact("relufy", "--help");
  expect(h.code).toBe(0);
  for (const flag of ["--distill α", "--distill-temp τ", "--synthetic N"]) expect(h.stdout).toContain(flag);
});

test("usage errors exit 2", () => {
  expect(dynact("relufy", "-m", model, "-d", text).stderr).toMatch(/-o\/--output is required/);
  expect(dynact("relufy", ...common, "-o", "x.bin", "--seq", "1").code).toBe(2);
  expect(dynact("relufy", ...common, "-o", "x.bin", "--format", "onnx").code).toBe(2);
  const long = dynact("relufy", ...common.slice(0, -6), "--seq", "32", "-o", "x.bin");
  expect(long.code).toBe(2);
  expect(long.stderr).toMatch(/longer than the model's context/);
  for (const [flag, value] of [["--distill", "1.5"], ["--distill", "-0.1"], ["--distill-temp", "0"], ["--synthetic", "2.5"],
    ["--synthetic", "-1"]]) {
    const r = dynact("relufy", ...common, "-o", "x.bin", `${flag}=${value}`);
    expect(r.code, `${flag} ${value}`).toBe(2);
    expect(r.stderr).toContain(`${flag} must be`);
  }
});
