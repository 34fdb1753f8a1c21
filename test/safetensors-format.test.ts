// Hugging Face folders: config.json + safetensors (single or sharded). The q/k row permutation is undone at load,
// so stories260K written as HF and read back gives the llama2.c logits; config.json fields map both ways.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { canonicalShapes, type Checkpoint } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { readGgufCheckpoint, writeGguf } from "../models/formats/gguf";
import { hfConfigJson, parseHfConfig } from "../models/formats/hf-config";
import { halfSplitToInterleaved, interleavedToHalfSplit } from "../models/formats/hf-permute";
import { readLlama2cCheckpoint } from "../models/formats/llama2c";
import {
  hfName, readSafetensorsCheckpoint, readSafetensorsHeader, safetensorsCheckpoint, writeSafetensors, type SafetensorsTensor,
} from "../models/formats/safetensors";
import { buildModel, openCheckpoint } from "../models/load";
import { llama3Frequency } from "../models/rope";
import { readTensorData } from "../models/weights";
import { haveAssets, shared } from "./assets";
import { lastLogits, relError } from "./model-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-st-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const logitsOf = (ckpt: Checkpoint, ids: number[]) => lastLogits(buildModel(ckpt, { contextLength: 64 }), ids);

describe("HF q/k row permutation", () => {
  test("half-split → interleaved undoes interleaved → half-split (and back), any heads, head size, row bytes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 12 }), fc.nat(), (heads, half, rowBytes, seed) => {
        const rows = heads * 2 * half;
        const data = Uint8Array.from({ length: rows * rowBytes }, (_, i) => (i * 131 + seed) & 0xff);
        const x = data.slice();
        interleavedToHalfSplit(x, rows, heads);
        halfSplitToInterleaved(x, rows, heads);
        expect(x).toEqual(data);
        halfSplitToInterleaved(x, rows, heads);
        interleavedToHalfSplit(x, rows, heads);
        expect(x).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  test("it is transformers' permute: each head's rows become [0, 2, 4, …, 1, 3, 5, …]", () => {
    const rows = Uint8Array.from({ length: 12 }, (_, i) => i); // 2 heads of 6 one-byte rows
    interleavedToHalfSplit(rows, 12, 2);
    expect(Array.from(rows)).toEqual([0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]);
  });

  test("heads that do not split into even halves are refused", () => {
    expect(() => halfSplitToInterleaved(new Uint8Array(12), 6, 2)).toThrow(/even size/);
  });
});

describe("config.json", () => {
  const base = { architectures: ["LlamaForCausalLM"], hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2,
    num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 256, rms_norm_eps: 1e-5 };

  test("fields map to LlamaConfig, with transformers' defaults", () => {
    expect(parseHfConfig(base, "c.json")).toEqual({
      config: { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, ropeTheta: 10000,
        normEps: 1e-5, activation: "silu" },
      tied: false,
    });
    const { config } = parseHfConfig({ ...base, num_key_value_heads: undefined, hidden_act: "relu", rope_theta: 5e5 }, "c.json");
    expect(config).toMatchObject({ nKvHeads: 8, activation: "relu", ropeTheta: 5e5 });
  });

  test("llama3 rope_scaling is kept and written back", () => {
    const rope_scaling = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const { config, tied } = parseHfConfig({ ...base, rope_scaling, tie_word_embeddings: true }, "c.json");
    expect(config.ropeScaling).toEqual({ type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 });
    const again = parseHfConfig(hfConfigJson(config, { tied, dtype: "bf16" }, "c.json"), "c.json");
    expect(again).toEqual({ config, tied: true });
  });

  test.each<[string, Record<string, unknown>, string]>([
    ["another architecture", { architectures: ["MistralForCausalLM"] }, "architectures"],
    ["gelu", { hidden_act: "gelu" }, "hidden_act"],
    ["biases", { attention_bias: true }, "attention_bias"],
    ["a linear rope scaling", { rope_scaling: { type: "linear", factor: 2 } }, "rope_scaling"],
    ["llama3 scaling without its factors", { rope_scaling: { rope_type: "llama3", factor: 8 } }, "rope_scaling.low_freq_factor"],
    ["a head_dim that is not hidden/heads", { head_dim: 16 }, "head_dim"],
    ["a missing size", { hidden_size: undefined }, "hidden_size"],
    ["a fractional size", { intermediate_size: 17.5 }, "intermediate_size"],
    ["heads that do not divide the width", { num_attention_heads: 7 }, "num_attention_heads"],
    ["a zero rms_norm_eps", { rms_norm_eps: 0 }, "rms_norm_eps"],
    ["a negative rope_theta", { rope_theta: -1 }, "rope_theta"],
    ["KV heads that do not divide the heads", { num_key_value_heads: 3 }, "num_key_value_heads"],
    ["a partial rotary factor", { partial_rotary_factor: 0.5 }, "partial_rotary_factor"],
    ["a head_dim that is a string", { head_dim: "8" }, "head_dim"],
    ["architectures that is not a list", { architectures: "LlamaForCausalLM" }, "architectures"],
    ["a string for tie_word_embeddings", { tie_word_embeddings: "yes" }, "tie_word_embeddings"],
  ])("%s → FormatError naming the field", (_, patch, field) => {
    const err = (() => {
      try {
        parseHfConfig({ ...base, ...patch }, "c.json");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).field).toBe(field);
  });

  test("transformers 5's rope_parameters: rope_theta and llama3 scaling read from it (they were ignored: theta 10000)", () => {
    const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const v5 = (rope_parameters: unknown, extra: Record<string, unknown> = {}) => parseHfConfig({ ...base, rope_parameters, ...extra }, "c.json").config;
    expect(v5({ rope_type: "default", rope_theta: 500000 })).toMatchObject({ ropeTheta: 500000 });
    expect(v5({ rope_theta: 500000 })).toMatchObject({ ropeTheta: 500000 });
    expect(v5({ rope_type: "llama3", rope_theta: 500000, ...llama3 })).toMatchObject({ ropeTheta: 500000,
      ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 } });
    expect(v5({ rope_type: "default", rope_theta: 500000 }, { rope_theta: 10000 }).ropeTheta).toBe(500000); // inside wins
    expect(v5({ rope_type: "default" }, { rope_theta: 20000 }).ropeTheta).toBe(20000);
    expect(() => v5({ rope_type: "yarn", rope_theta: 1e6, factor: 4 })).toThrow('c.json: rope_parameters: type "yarn" is not supported');
    expect(() => v5({ rope_type: "default", rope_theta: "1e6" })).toThrow('c.json: rope_parameters.rope_theta: "1e6" is not a number');
    expect(() => v5({ rope_type: "llama3", rope_theta: 5e5, factor: 8 })).toThrow("c.json: rope_parameters.low_freq_factor:");
    // A non-empty rope_scaling is read first, as transformers does.
    expect(v5({ rope_type: "yarn", factor: 4 }, { rope_scaling: { rope_type: "llama3", ...llama3 } }).ropeScaling).toMatchObject({ type: "llama3", factor: 8 });
  });

  test("messages say what is wrong with the value, in the file's own terms", () => {
    expect(() => parseHfConfig({ ...base, head_dim: "8" }, "c.json")).toThrow('c.json: head_dim: "8" is not an integer');
    expect(() => parseHfConfig({ ...base, architectures: "LlamaForCausalLM" }, "c.json")).toThrow('c.json: architectures: "LlamaForCausalLM" is not a list');
    expect(() => parseHfConfig({ ...base, rms_norm_eps: 0 }, "c.json")).toThrow("c.json: rms_norm_eps: bad value 0");
    expect(parseHfConfig({ ...base, partial_rotary_factor: 1, head_dim: 8 }, "c.json").config.nHeads).toBe(8);
  });

  test("llama3Frequency keeps high frequencies, divides low ones by the factor, blends between", () => {
    const s = { type: "llama3" as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
    expect(llama3Frequency(1, s)).toBe(1); // wavelength 2π
    const low = (2 * Math.PI) / 10000; // wavelength 10000 > 8192
    expect(llama3Frequency(low, s)).toBeCloseTo(low / 8, 15);
    const mid = (2 * Math.PI) / 4096; // smooth = (2 - 1) / 3
    expect(llama3Frequency(mid, s)).toBeCloseTo((2 / 3) * (mid / 8) + (1 / 3) * mid, 15);
  });
});

describe("which stored tensors a folder's checkpoint uses", () => {
  const { config } = parseHfConfig({ architectures: ["LlamaForCausalLM"], hidden_size: 64, intermediate_size: 172,
    num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 256,
    rms_norm_eps: 1e-5 }, "c.json");
  // Headers only: every tensor of the config by its HF name, laid out one after another.
  const header = (extra: [string, number[]][] = []): Map<string, SafetensorsTensor> => {
    const m = new Map<string, SafetensorsTensor>();
    let offset = 8;
    for (const [name, shape] of [...[...canonicalShapes(config)].map(([n, s]) => [hfName(n), s] as [string, number[]]), ...extra]) {
      const bytes = 4 * shape.reduce((a, b) => a * b, 1);
      m.set(name, { dtype: "f32", shape, offset, bytes });
      offset += bytes;
    }
    return m;
  };

  test("tie_word_embeddings with an lm_head.weight stored: the embedding is the classifier, as in transformers", () => {
    const ckpt = safetensorsCheckpoint("d", config, true, [{ file: "d/model.safetensors", tensors: header() }]);
    expect(ckpt.tensors.has("output")).toBe(false); // it used to be the stored lm_head, even one differing from the embedding
    expect(safetensorsCheckpoint("d", config, false, [{ file: "d/model.safetensors", tensors: header() }]).tensors.has("output")).toBe(true);
  });

  test("K/V that do not fit say how many KV heads config.json gave (num_key_value_heads defaults to the heads)", () => {
    expect(() => safetensorsCheckpoint("d", { ...config, nKvHeads: 8 }, true, [{ file: "d/model.safetensors", tensors: header() }]))
      .toThrow("d/model.safetensors: model.layers.0.self_attn.k_proj.weight: shape [32, 64] but config.json needs [64, 64] (num_key_value_heads 8)");
  });

  test("rotary_emb.inv_freq buffers are ignored, also when a shard holds them and the index does not list them", () => {
    const inv: [string, number[]][] = [["model.layers.0.self_attn.rotary_emb.inv_freq", [4]], ["model.rotary_emb.inv_freq", [4]]];
    const tensors = header(inv);
    const listed = new Set([...header().keys()]);
    const ckpt = safetensorsCheckpoint("d", config, false, [{ file: "d/s.safetensors", tensors, listed }]);
    expect(ckpt.tensors.size).toBe(canonicalShapes(config).size);
    // Another tensor the index does not list is still refused.
    listed.delete("model.norm.weight");
    expect(() => safetensorsCheckpoint("d", config, false, [{ file: "d/s.safetensors", tensors, listed }]))
      .toThrow(/model\.norm\.weight: not listed for this shard/);
  });
});

describe.runIf(haveAssets("models/stories260K.bin"))("stories260K as a Hugging Face folder", () => {
  const bin = readLlama2cCheckpoint(shared("models/stories260K.bin"));
  const ids = [1, 403, 407, 261, 378];
  const base = logitsOf(bin, ids);
  const fromBin = (name: string) => readTensorData(bin, name === "output" ? "token_embd" : name);

  test(".bin → GGUF F32 → safetensors F32: identical logits; q/k stored in HF order", () => {
    const gguf = path.join(dir, "m.gguf");
    writeGguf(gguf, bin.config, fromBin, { dtype: "f32", tied: true });
    const g = readGgufCheckpoint(gguf);
    const hf = path.join(dir, "hf-f32");
    writeSafetensors(hf, g.config, (n) => readTensorData(g, n), { dtype: "f32", tied: true });
    const st = openCheckpoint(hf);
    expect(st.format).toBe("safetensors");
    expect(st.config).toEqual(bin.config);
    expect(st.tensors.has("output")).toBe(false);
    expect(logitsOf(st, ids)).toEqual(base);
    // The file itself holds HF's order: raw rows of W_k differ from ours, and reading restores them.
    const header = readSafetensorsHeader(path.join(hf, "model.safetensors"));
    const k = header.get("model.layers.0.self_attn.k_proj.weight")!;
    const raw = new Float32Array(new Uint8Array(readFileSync(path.join(hf, "model.safetensors")).subarray(k.offset, k.offset + k.bytes)).buffer);
    expect(raw).not.toEqual(fromBin("blk.0.attn_k"));
    expect(readTensorData(st, "blk.0.attn_k")).toEqual(fromBin("blk.0.attn_k"));
  });

  test("untied: lm_head is written and read; missing when config says untied → FormatError", () => {
    const hf = path.join(dir, "hf-untied");
    writeSafetensors(hf, bin.config, fromBin, { dtype: "f32", tied: false });
    const st = readSafetensorsCheckpoint(hf);
    expect(st.tensors.has("output")).toBe(true);
    expect(logitsOf(st, ids)).toEqual(base);
    const json = JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8"));
    const hf2 = path.join(dir, "hf-untied-missing");
    writeSafetensors(hf2, bin.config, fromBin, { dtype: "f32", tied: true });
    writeFileSync(path.join(hf2, "config.json"), JSON.stringify({ ...json, tie_word_embeddings: false }));
    expect(() => readSafetensorsCheckpoint(hf2)).toThrow(/lm_head\.weight: missing/);
    // 2^24 layers (the most validateConfig allows): the first missing layer is named at once, with no list of
    // 9 × 2^24 names built first (that exhausts the heap).
    writeFileSync(path.join(hf2, "config.json"), JSON.stringify({ ...json, tie_word_embeddings: true, num_hidden_layers: 2 ** 24 }));
    expect(() => readSafetensorsCheckpoint(hf2)).toThrow(new RegExp(`model\\.layers\\.${bin.config.nLayers}\\.input_layernorm\\.weight: missing`));
  });

  test.each(["f16", "bf16"] as const)("%s: every tensor stored in that dtype, values within its rounding", (dtype) => {
    const hf = path.join(dir, `hf-${dtype}`);
    writeSafetensors(hf, bin.config, fromBin, { dtype, tied: true });
    const st = readSafetensorsCheckpoint(hf);
    const ulp = dtype === "f16" ? 2 ** -11 : 2 ** -8;
    for (const [name, e] of st.tensors) {
      expect(e.dtype).toBe(dtype);
      const want = fromBin(name);
      const got = readTensorData(st, name);
      // Round to nearest: within half a unit in the last place, relative (subnormal f16 needs the absolute floor).
      const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!) - ulp * Math.abs(want[i]!)), -Infinity);
      expect(worst).toBeLessThanOrEqual(2 ** -25);
    }
  });

  test.each(["f16", "bf16"] as const)("%s logits are within 1e-2 (relative) of f32's", (dtype) => {
    const hf = path.join(dir, `hf-logits-${dtype}`);
    writeSafetensors(hf, bin.config, fromBin, { dtype, tied: true });
    expect(relError(logitsOf(readSafetensorsCheckpoint(hf), ids), base)).toBeLessThan(1e-2);
  });

  test("sharded with model.safetensors.index.json: same tensors, same logits", () => {
    const hf = path.join(dir, "hf-single");
    writeSafetensors(hf, bin.config, fromBin, { dtype: "f32", tied: true });
    const sharded = path.join(dir, "hf-sharded");
    mkdirSync(sharded);
    writeFileSync(path.join(sharded, "config.json"), readFileSync(path.join(hf, "config.json")));
    const file = readFileSync(path.join(hf, "model.safetensors"));
    const names = [...readSafetensorsHeader(path.join(hf, "model.safetensors"))];
    const weightMap: Record<string, string> = {};
    const halves = [names.slice(0, 20), names.slice(20)];
    halves.forEach((part, i) => {
      const shard = `model-0000${i + 1}-of-00002.safetensors`;
      const header: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      let at = 0;
      for (const [name, t] of part) {
        header[name] = { dtype: "F32", shape: t.shape, data_offsets: [at, at + t.bytes] };
        chunks.push(file.subarray(t.offset, t.offset + t.bytes));
        at += t.bytes;
        weightMap[name] = shard;
      }
      const json = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeFileSync(path.join(sharded, shard), Buffer.concat([len, json, ...chunks]));
    });
    writeFileSync(path.join(sharded, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const st = readSafetensorsCheckpoint(sharded);
    expect(new Set([...st.tensors.values()].map((e) => path.basename(e.file!))).size).toBe(2);
    expect(logitsOf(st, ids)).toEqual(base);
    // An index naming a file outside the folder is refused.
    writeFileSync(path.join(sharded, "model.safetensors.index.json"), JSON.stringify({ weight_map: { ...weightMap, "lm_head.weight": "../x" } }));
    expect(() => readSafetensorsCheckpoint(sharded)).toThrow(/not a file name in the folder/);
  });

  test("a folder without config.json, or without weights, is refused clearly", () => {
    const empty = path.join(dir, "empty");
    mkdirSync(empty);
    expect(() => openCheckpoint(empty)).toThrow(/is a directory without config\.json/);
    writeFileSync(path.join(empty, "config.json"), JSON.stringify(hfConfigJson(bin.config, { tied: true, dtype: "f32" }, "x")));
    expect(() => openCheckpoint(empty)).toThrow(/model\.safetensors: missing/);
  });

  test("llama3 RoPE scaling changes the logits (the table uses it)", () => {
    const hf = path.join(dir, "hf-llama3");
    const config: LlamaConfig = { ...bin.config, ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8 } };
    writeSafetensors(hf, config, fromBin, { dtype: "f32", tied: true });
    const st = readSafetensorsCheckpoint(hf);
    expect(st.config.ropeScaling).toEqual(config.ropeScaling);
    expect(logitsOf(st, ids)).not.toEqual(base);
  });
});
