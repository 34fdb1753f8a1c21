// The dynact command on GGUF and Hugging Face checkpoints, and `dynact convert` round trips through every format
// (the built bundle in a child process, as a user runs it).
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import type { Llama3RopeScaling, LlamaConfig } from "../models/config";
import { writeGguf } from "../models/formats/gguf";
import { writeSafetensors } from "../models/formats/safetensors";
import { buildModel, openCheckpoint } from "../models/load";
import { llama3FreqFactors } from "../models/rope";
import { FIXTURES, haveAssets, shared } from "./assets";
import { dynact, expectFailure } from "./cli-harness";
import { BOT, byteLevelModel, EOT } from "./byte-level-vocab";
import { lastLogits } from "./model-harness";
import { randomWeights } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-clif-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveAssets("models/stories260K.gguf", "models/stories260K.bin", "models/tok512.bin"))("GGUF and convert", () => {
  const gguf = shared("models/stories260K.gguf");
  const bin = shared("models/stories260K.bin");
  const tok = shared("models/tok512.bin");
  const golden = JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-greedy.json"), "utf8"));
  const logits = (...args: string[]) => {
    const r = dynact("logits", ...args, "-p", "Once upon a time", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { ids: number[]; logits: number[] };
  };

  test("inspect reads a GGUF header", () => {
    const r = dynact("inspect", "-m", gguf, "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.format).toBe("gguf");
    expect(out.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 2048 });
    expect(out.tied_output).toBe(false);
    expect(out.tensors).toHaveLength(48);
    expect(dynact("inspect", "-m", gguf).stdout).toMatch(/: gguf\n/);
  });

  test("generate on the GGUF uses its own tokenizer and gives run.c's greedy tokens", () => {
    const c = golden.cases[0];
    const r = dynact("generate", "-m", gguf, "-p", c.prompt, "-n", "40", "--temperature", "0", "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.prompt_tokens).toEqual(c.prompt_ids);
    expect(out.tokens).toEqual(c.generated.slice(0, 40));
  });

  test("convert .bin → gguf → safetensors → llama2c: the same logits at every step", () => {
    const base = logits("-m", bin, "-t", tok);
    const g = path.join(dir, "m.gguf");
    const r1 = dynact("convert", "-m", bin, "-t", tok, "-o", g, "--to", "gguf", "--json");
    expect(r1.code).toBe(0);
    expect(JSON.parse(r1.stdout)).toMatchObject({ format: "gguf", dtype: "f32", tokenizer: true, fallbacks: [] });
    expect(logits("-m", g)).toEqual(base); // tokenizer from the new file's metadata

    const hf = path.join(dir, "hf");
    expect(dynact("convert", "-m", g, "-o", hf, "--to", "safetensors").code).toBe(0);
    expect(logits("-m", hf, "-t", g)).toEqual(base); // -t takes a GGUF's tokenizer too

    const back = path.join(dir, "back.bin");
    const r3 = dynact("convert", "-m", hf, "-o", back, "--to", "llama2c");
    expect(r3.code).toBe(0);
    expect(r3.stderr).toMatch(/wrote .*back\.bin: llama2c, f32, 47 tensors/);
    expect(logits("-m", back, "-t", tok)).toEqual(base);
    // The weights come back bit for bit (only the unused RoPE tables at the end may differ in rounding).
    const a = readFileSync(bin);
    const b = readFileSync(back);
    const ropeStart = a.length - 2 * 512 * 4 * 4;
    expect(b.subarray(0, ropeStart).equals(a.subarray(0, ropeStart))).toBe(true);
  });

  test("convert to q8_0 notes the tensors that fall back to f16; a missing tokenizer is a note", () => {
    const out = path.join(dir, "q8.gguf");
    const r = dynact("convert", "-m", bin, "-o", out, "--to", "gguf", "--dtype", "q8_0");
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/note: no tokenizer written/);
    expect(r.stderr).toMatch(/note: blk\.0\.ffn_down written as f16: rows of 172 values are not a multiple of 32/);
    const tensors = JSON.parse(dynact("inspect", "-m", out, "--json").stdout).tensors as { name: string; dtype: string }[];
    expect(tensors.find((t) => t.name === "blk.0.attn_q")!.dtype).toBe("q8_0");
    expect(tensors.find((t) => t.name === "output_norm")!.dtype).toBe("f32");
  });

  test("unsupported combinations are usage errors", () => {
    expectFailure(dynact("convert", "-m", bin, "-o", path.join(dir, "x"), "--to", "llama2c", "--dtype", "f16"), 2, /--to llama2c writes --dtype f32; got 'f16'/);
    expectFailure(dynact("convert", "-m", bin, "-o", path.join(dir, "x"), "--to", "safetensors", "--dtype", "q4_0"), 2, /f32, f16, bf16/);
    expectFailure(dynact("convert", "-m", bin, "-o", path.join(dir, "x"), "--to", "onnx"), 2, /--to must be one of gguf, safetensors, llama2c/);
    expectFailure(dynact("convert", "-m", bin, "--to", "gguf"), 2, /-o\/--output is required/);
    expectFailure(dynact("convert", "-m", bin, "-t", tok, "-o", path.join(dir, "x"), "--to", "llama2c"), 2, /--to llama2c writes no tokenizer/); // was dropped
  });

  test("convert refuses to write over the model it reads (which would destroy it)", () => {
    const m = path.join(dir, "self.bin");
    copyFileSync(bin, m);
    const before = readFileSync(m);
    expectFailure(dynact("convert", "-m", m, "-o", m, "--to", "llama2c"), 2, /would overwrite the model being converted/);
    expectFailure(dynact("convert", "-m", m, "-o", path.join(dir, ".", "self.bin"), "--to", "gguf"), 2, /would overwrite/);
    expect(readFileSync(m).equals(before)).toBe(true);
    const hf = path.join(dir, "hf-self");
    expect(dynact("convert", "-m", m, "-o", hf, "--to", "safetensors").code).toBe(0);
    const st = readFileSync(path.join(hf, "model.safetensors"));
    expectFailure(dynact("convert", "-m", hf, "-o", hf, "--to", "safetensors"), 2, /would overwrite the model being converted/);
    expect(readFileSync(path.join(hf, "model.safetensors")).equals(st)).toBe(true);
  });

  test("a model llama2.c cannot describe is refused", () => {
    // stories260K.gguf's eps is 1e-5 and theta 10000, but a GGUF can hold others: fake one through safetensors.
    const hf = path.join(dir, "hf-theta");
    expect(dynact("convert", "-m", gguf, "-o", hf, "--to", "safetensors").code).toBe(0);
    const configFile = path.join(hf, "config.json");
    const config = JSON.parse(readFileSync(configFile, "utf8"));
    writeFileSync(configFile, JSON.stringify({ ...config, rope_theta: 500000 }));
    expectFailure(dynact("convert", "-m", hf, "-o", path.join(dir, "t.bin"), "--to", "llama2c"), 1, /ropeTheta: llama2\.c files can only hold 10000/);
  });
});

// Llama 3.1 RoPE scaling through the CLI: HF folder -> GGUF (rope_freqs for llama.cpp, the parameters for us) ->
// HF folder again, the same logits at every step; inspect says which form a file holds.
test("convert keeps llama3 RoPE scaling through GGUF and back; inspect shows it", () => {
  const config: LlamaConfig = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 80, seqLen: 48,
    ropeTheta: 500000, normEps: 1e-5, activation: "silu",
    ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16 } };
  const weights = randomWeights(config, 5);
  const hf = path.join(dir, "l3-hf");
  writeSafetensors(hf, config, (n) => Float32Array.from(weights(n)), { dtype: "f32", tied: false });
  const g = path.join(dir, "l3.gguf");
  const back = path.join(dir, "l3-back");
  expect(dynact("convert", "-m", hf, "-o", g, "--to", "gguf").code).toBe(0);
  const r = dynact("convert", "-m", g, "-o", back, "--to", "safetensors");
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/note: config\.json gets no bos_token_id \/ eos_token_id \(/);
  const logits = (m: string) => lastLogits(buildModel(openCheckpoint(m)), [1, 7, 30, 41]); // no tokenizer to prompt with
  expect(logits(g)).toEqual(logits(hf));
  expect(logits(back)).toEqual(logits(hf));
  // No tokenizer anywhere: config.json leaves the special ids to transformers' defaults rather than guess them.
  expect(readFileSync(path.join(back, "config.json"), "utf8")).not.toMatch(/_token_id/);
  expect(JSON.parse(readFileSync(path.join(back, "config.json"), "utf8")).rope_scaling).toMatchObject(
    { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 });
  expect(dynact("inspect", "-m", g).stdout).toMatch(/\n  rope scaling llama3: factor 8, low_freq_factor 1, high_freq_factor 4, original context 16\n/);
  // A llama.cpp file holds the divisors alone: --json gives them as a list.
  const cpp = path.join(dir, "l3-cpp.gguf");
  const divisors = llama3FreqFactors(16, 500000, config.ropeScaling as Llama3RopeScaling);
  writeGguf(cpp, { ...config, ropeScaling: { type: "divisors", divisors } }, (n) => Float32Array.from(weights(n)), { dtype: "f32", tied: false });
  expect(JSON.parse(dynact("inspect", "-m", cpp, "--json").stdout).config.ropeScaling).toEqual({ type: "divisors", divisors: [...divisors] });
  expect(dynact("inspect", "-m", cpp).stdout).toMatch(/\n  rope scaling llama\.cpp rope_freqs: 8 frequency divisors from 1\.\d+ to 8\n/);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin"))("convert --to safetensors -t", () => {
  test("takes the tokenizer whose BOS and EOS config.json records, as the note without one tells (it was a usage error)", () => {
    const bin = path.join(dir, "lone.bin"); // no tokenizer.bin beside it
    copyFileSync(shared("models/stories260K.bin"), bin);
    const without = dynact("convert", "-m", bin, "-o", path.join(dir, "lone-hf"), "--to", "safetensors");
    expect(without.code).toBe(0);
    expect(without.stderr).toMatch(/note: config\.json gets no bos_token_id \/ eos_token_id \(.*: pass -t TOKENIZER\)/);
    const hf = path.join(dir, "lone-hf-t");
    const r = dynact("convert", "-m", bin, "-t", shared("models/tok512.bin"), "-o", hf, "--to", "safetensors");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/note/);
    expect(JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8"))).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    // A -t that does not load is an error, not a note (as for --to gguf).
    expectFailure(dynact("convert", "-m", bin, "-t", path.join(dir, "none.bin"), "-o", path.join(dir, "lone-hf-x"), "--to", "safetensors"), 1,
      /none\.bin: no such tokenizer file/);
  });
});

test("convert --to safetensors writes the tokenizer's BOS and EOS ids into config.json (not always 1 and 2)", () => {
  const { model } = byteLevelModel(dir, "bytes", 3); // a GGUF with a byte-level tokenizer: BOS 267, EOS 268
  const hf = path.join(dir, "bytes-hf");
  expect(dynact("convert", "-m", model, "-o", hf, "--to", "safetensors").code).toBe(0);
  expect(JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8"))).toMatchObject({ bos_token_id: BOT, eos_token_id: EOT });
});
