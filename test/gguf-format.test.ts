// GGUF: the published stories260K.gguf reads as the same model as stories260K.bin (same logits, same greedy
// tokens, same tokenizer), and files we write read back through the same code path.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { quantize } from "../engine/quant";
import { canonicalShapes, type Checkpoint } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { encodeGgufHeader, ggufCheckpoint, parseGgufHeader, readGgufCheckpoint, readGgufFile, readGgufTokenizer, writeGguf } from "../models/formats/gguf";
import { metaFloat, metaInt, metaString, type GgufValue } from "../models/formats/gguf-metadata";
import { readLlama2cCheckpoint } from "../models/formats/llama2c";
import { writeSafetensors } from "../models/formats/safetensors";
import { generate } from "../models/generate";
import { buildModel, loadModel, openCheckpoint } from "../models/load";
import { Sampler } from "../models/sampler";
import { readLlama2cTokenizer, type SentencePieceBpeTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { readTensorData } from "../models/weights";
import { llama3FreqFactors } from "../models/rope";
import { FIXTURES, haveAssets, shared } from "./assets";
import { lastLogits, relError } from "./model-harness";
import { randomWeights } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const golden: { cases: { prompt: string; prompt_ids: number[]; generated: number[]; stopped_at_bos: boolean }[] } =
  JSON.parse(readFileSync(path.join(FIXTURES, "stories260K-greedy.json"), "utf8"));
const texts: string[] = JSON.parse(readFileSync(path.join(FIXTURES, "tokenizer-encode.json"), "utf8")).texts;

const logitsOf = (ckpt: Checkpoint, ids: number[]) => lastLogits(buildModel(ckpt, { contextLength: 512 }), ids);

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe.runIf(haveAssets("models/stories260K.gguf", "models/stories260K.bin", "models/tok512.bin"))("stories260K.gguf", () => {
  const gguf = shared("models/stories260K.gguf");
  const bin = readLlama2cCheckpoint(shared("models/stories260K.bin"));
  const ckpt = readGgufCheckpoint(gguf);
  const ids = golden.cases[0]!.prompt_ids;

  test("header as documented", () => {
    const g = readGgufFile(gguf);
    expect(g).toMatchObject({ version: 3, alignment: 32, dataOffset: 14176 });
    expect(g.metadata.size).toBe(19);
    expect(g.tensors.length).toBe(48);
    expect(ckpt.format).toBe("gguf");
    expect(ckpt.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512,
      seqLen: 2048, normEps: 1e-5, ropeTheta: 10000, activation: "silu" });
    expect(ckpt.tensors.has("output")).toBe(true);
    expect(openCheckpoint(gguf).format).toBe("gguf");
  });

  test("parsing from memory equals reading the file piecewise", () => {
    const bytes = readFileSync(gguf);
    expect(parseGgufHeader(bytes, bytes.length, gguf)).toEqual(readGgufFile(gguf));
  });

  test("every weight is the same tensor as in stories260K.bin", () => {
    for (const [name, e] of ckpt.tensors) {
      expect(e.shape).toEqual(bin.tensors.get(name === "output" ? "token_embd" : name)!.shape);
      expect(sameBits(readTensorData(ckpt, name), readTensorData(bin, name === "output" ? "token_embd" : name))).toBe(true);
    }
  });

  test("logits equal stories260K.bin's (1e-5 relative)", () => {
    for (const c of golden.cases) expect(relError(logitsOf(ckpt, c.prompt_ids), logitsOf(bin, c.prompt_ids))).toBeLessThan(1e-5);
  });

  test("greedy decoding gives run.c's tokens, with the tokenizer from the metadata", () => {
    const loaded = loadModel(gguf, { contextLength: 512 });
    expect(loaded.stopAtBos).toBe(false); // llama.cpp stops at EOS only
    for (const c of golden.cases) {
      const sampler = new Sampler(512, { temperature: 0, topP: 1, seed: 1 });
      // The fixture is run.c's, which stops at BOS: compare with the same rule.
      const r = generate({ ...loaded, stopAtBos: true }, { prompt: c.prompt, maxNewTokens: 512, sampler });
      expect(r.promptTokens).toEqual(c.prompt_ids);
      expect(r.tokens).toEqual(c.generated);
    }
  });

  test("the metadata tokenizer is tok512.bin: same pieces, scores and encodings", () => {
    const fromGguf = readGgufTokenizer(gguf) as SentencePieceBpeTokenizer;
    const tok512 = readLlama2cTokenizer(shared("models/tok512.bin"));
    expect(fromGguf.pieces).toEqual(tok512.pieces);
    expect(fromGguf.scores).toEqual(tok512.scores);
    for (const t of texts) expect(fromGguf.encode(t)).toEqual(tok512.encode(t));
    expect(fromGguf.decode(tok512.encode("Once upon a time, Lily"))).toBe(tok512.decode(tok512.encode("Once upon a time, Lily")));
  });

  describe("written from stories260K.bin", () => {
    const tok = readLlama2cTokenizer(shared("models/tok512.bin"));
    const read = (name: string) => readTensorData(bin, name === "output" ? "token_embd" : name);
    const base = logitsOf(bin, ids);

    test("F32, tied and untied: identical logits, tokenizer kept", () => {
      for (const tied of [true, false]) {
        const out = path.join(dir, `f32-${tied}.gguf`);
        expect(writeGguf(out, bin.config, read, { dtype: "f32", tied, tokenizer: tok }).fallbacks).toEqual([]);
        const c = readGgufCheckpoint(out);
        expect(c.config).toEqual(bin.config);
        expect(c.tensors.has("output")).toBe(!tied);
        expect(logitsOf(c, ids)).toEqual(base);
        const t = readGgufTokenizer(out) as SentencePieceBpeTokenizer;
        expect(t.pieces).toEqual(tok.pieces);
        expect(t.scores).toEqual(tok.scores);
      }
    });

    test("a file written without a tokenizer says so when one is needed", () => {
      const out = path.join(dir, "notok.gguf");
      writeGguf(out, bin.config, read, { dtype: "f32", tied: true });
      expect(() => readGgufTokenizer(out)).toThrow(/tokenizer\.ggml\.model: missing/);
      expect(() => loadModel(out)).toThrow(/pass -t TOKENIZER/);
      expect(loadModel(out, { tokenizer: shared("models/tok512.bin") }).tokenizer.vocabSize).toBe(512);
    });

    test.each(["f16", "bf16", "q8_0", "q4_0"] as const)("%s: norms stay F32, rows not a multiple of 32 fall back to F16, bytes as quantize()", (dtype) => {
      const out = path.join(dir, `${dtype}.gguf`);
      const { fallbacks } = writeGguf(out, bin.config, read, { dtype, tied: true, tokenizer: tok });
      const quantized = dtype === "q8_0" || dtype === "q4_0";
      // Only W_down has rows of hidden_dim = 172 values.
      expect(fallbacks.map((f) => f.name)).toEqual(quantized ? [0, 1, 2, 3, 4].map((l) => `blk.${l}.ffn_down`) : []);
      const c = readGgufCheckpoint(out);
      const file = readFileSync(out);
      for (const [name, e] of c.tensors) {
        const want = e.shape.length === 1 ? "f32" : quantized && name.endsWith("ffn_down") ? "f16" : dtype;
        expect(e.dtype).toBe(want);
        const bytes = file.subarray(e.fileOffset, e.fileOffset + quantize(want, read(name)).length);
        expect(Buffer.from(quantize(want, read(name))).equals(bytes)).toBe(true);
      }
    });

    test.each([["f16", 1e-2], ["bf16", 1e-2], ["q8_0", 5e-2], ["q4_0", 0.3]] as const)(
      "%s logits are within %f (relative) of f32's", (dtype, tol) => {
        const out = path.join(dir, `logits-${dtype}.gguf`);
        writeGguf(out, bin.config, read, { dtype, tied: true });
        expect(relError(logitsOf(readGgufCheckpoint(out), ids), base)).toBeLessThan(tol);
      });

    test("activation and ReLU-after-norm round-trip through dynact.* keys (absent for plain SiLU)", () => {
      const out = path.join(dir, "relu.gguf");
      writeGguf(out, { ...bin.config, activation: "relu", reluAfterNorm: true }, read, { dtype: "f32", tied: true });
      expect(readGgufCheckpoint(out).config).toMatchObject({ activation: "relu", reluAfterNorm: true });
      const silu = path.join(dir, "silu.gguf");
      writeGguf(silu, bin.config, read, { dtype: "f32", tied: true });
      expect([...readGgufFile(silu).metadata.keys()].some((k) => k.startsWith("dynact."))).toBe(false);
    });
  });
});

describe("metadata values", () => {
  const all: [string, GgufValue][] = [
    ["u8", { type: "u8", value: 255 }], ["i8", { type: "i8", value: -128 }],
    ["u16", { type: "u16", value: 65535 }], ["i16", { type: "i16", value: -32768 }],
    ["u32", { type: "u32", value: 2 ** 32 - 1 }], ["i32", { type: "i32", value: -(2 ** 31) }],
    ["f32", { type: "f32", value: Math.fround(0.1) }], ["bool", { type: "bool", value: true }],
    ["string", { type: "string", value: "▁héllo, 世界" }],
    ["u64", { type: "u64", value: 2n ** 64n - 1n }], ["i64", { type: "i64", value: -(2n ** 63n) }],
    ["f64", { type: "f64", value: Math.PI }],
    ["nested", { type: "array", value: { itemType: "array", items: [
      { itemType: "string", items: ["a", ""] }, { itemType: "i64", items: [-1n] }, { itemType: "bool", items: [] }] } }],
  ];

  test("every type and nested arrays read back as written", () => {
    const head = encodeGgufHeader(all, []);
    const g = parseGgufHeader(head, head.length, "v.gguf");
    expect([...g.metadata]).toEqual(all);
    expect(g.tensors).toEqual([]);
  });

  test("GGUF v2 reads like v3; v1, other versions and big-endian files are refused", () => {
    const head = encodeGgufHeader(all, []);
    const version = (v: number) => {
      const h = head.slice();
      new DataView(h.buffer).setUint32(4, v, true);
      return () => parseGgufHeader(h, h.length, "v.gguf");
    };
    expect(version(2)().metadata.size).toBe(all.length);
    expect(version(1)).toThrow(/version 1 is not supported/);
    expect(version(0x03000000)).toThrow(/big-endian/);
  });

  test("typed access says what a key holds when it is not what the model needs", () => {
    const meta = new Map(all);
    expect(() => metaInt(meta, "f32", "v.gguf")).toThrow(/v\.gguf: f32: is a f32, expected an integer/);
    expect(() => metaString(meta, "nested", "v.gguf")).toThrow(/is an array of array, expected a string/);
    expect(metaInt(meta, "u64", "v.gguf")).toBe(2 ** 64);
    expect(metaFloat(meta, "f32", "v.gguf")).toBe(0.1); // the shortest decimal of the f32
  });

  test("a bool byte other than 0 or 1 is refused", () => {
    const head = encodeGgufHeader([["b", { type: "bool", value: true }]], []);
    head[head.length - 1] = 2;
    expect(() => parseGgufHeader(head, head.length, "v.gguf")).toThrow(/v\.gguf: b: bool byte is 2/);
  });
});

describe("llama.* keys that change the math", () => {
  // A header for a tiny tied llama (head size 16), tensors laid out but not written: ggufCheckpoint reads no data.
  const config = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 16,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" as const };
  const checkpoint = (extra: [string, GgufValue][], drop: string[] = []) => {
    const u32 = (value: number): GgufValue => ({ type: "u32", value });
    const meta: [string, GgufValue][] = [
      ["general.architecture", { type: "string", value: "llama" }], ["llama.context_length", u32(16)],
      ["llama.embedding_length", u32(32)], ["llama.block_count", u32(1)], ["llama.feed_forward_length", u32(64)],
      ["llama.attention.head_count", u32(2)], ["llama.attention.head_count_kv", u32(1)],
      ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ].filter(([k]) => !extra.some(([e]) => e === k) && !drop.includes(k as string)).concat(extra) as [string, GgufValue][]; // extra replaces a key
    let offset = 0;
    const tensors = [...canonicalShapes(config)].filter(([n]) => n !== "output").map(([name, shape]) => {
      const t = { name: `${name}.weight`, shape, dtype: "f32" as const, offset };
      offset += Math.ceil((4 * shape.reduce((a, b) => a * b, 1)) / 32) * 32;
      return t;
    });
    const head = encodeGgufHeader(meta, tensors);
    return ggufCheckpoint(parseGgufHeader(head, Math.ceil(head.length / 32) * 32 + offset, "t.gguf"), "t.gguf");
  };

  test("the plain header reads as the config", () => {
    expect(checkpoint([]).config).toEqual(config);
  });

  test("without llama.attention.head_count_kv there are head_count KV heads: a GQA file says so when K does not fit", () => {
    expect(() => checkpoint([], ["llama.attention.head_count_kv"]))
      .toThrow("t.gguf: blk.0.attn_k.weight: shape [16, 32] but the config needs [32, 32] (llama.attention.head_count_kv 2: absent, so head_count)");
  });

  test("an impossible config names the GGUF key, not LlamaConfig's field", () => {
    expect(() => checkpoint([["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 0 }]]))
      .toThrow("t.gguf: llama.attention.layer_norm_rms_epsilon: bad value 0");
    expect(() => checkpoint([["llama.attention.head_count_kv", { type: "u32", value: 0 }]]))
      .toThrow("t.gguf: llama.attention.head_count_kv: must be a positive integer, got 0");
  });

  test("a RoPE scaling factor without a type is linear scaling in llama.cpp: refused, not ignored", () => {
    const f32 = (value: number): GgufValue => ({ type: "f32", value });
    expect(() => checkpoint([["llama.rope.scaling.factor", f32(4)]]))
      .toThrow(/t\.gguf: llama\.rope\.scaling\.factor: 4: linear RoPE scaling \(llama\.cpp's default/);
    expect(() => checkpoint([["llama.rope.scale_linear", f32(2)]])).toThrow(/t\.gguf: llama\.rope\.scale_linear: 2: linear RoPE/);
    expect(() => checkpoint([["llama.rope.scaling.type", { type: "string", value: "linear" }], ["llama.rope.scaling.factor", f32(2)]]))
      .toThrow(/llama\.rope\.scaling\.factor: 2: linear RoPE scaling is not supported/);
    expect(() => checkpoint([["llama.rope.scaling.type", { type: "string", value: "yarn" }]])).toThrow(/llama\.rope\.scaling\.type: RoPE scaling "yarn"/);
    // A factor of 1 (or 0, llama.cpp's "unset") scales nothing, and type "none" turns any factor off.
    expect(checkpoint([["llama.rope.scaling.factor", f32(1)]]).config).toEqual(config);
    expect(checkpoint([["llama.rope.scale_linear", f32(0)]]).config).toEqual(config);
    expect(checkpoint([["llama.rope.scaling.type", { type: "string", value: "none" }], ["llama.rope.scaling.factor", f32(8)]]).config).toEqual(config);
  });

  test("attention.key_length / value_length other than embedding_length / head_count are refused by name", () => {
    const u32 = (value: number): GgufValue => ({ type: "u32", value });
    expect(checkpoint([["llama.attention.key_length", u32(16)], ["llama.attention.value_length", u32(16)]]).config).toEqual(config);
    expect(() => checkpoint([["llama.attention.key_length", u32(8)]]))
      .toThrow(/t\.gguf: llama\.attention\.key_length: 8 differs from embedding_length \/ head_count = 16/);
    expect(() => checkpoint([["llama.attention.value_length", u32(32)]])).toThrow(/llama\.attention\.value_length: 32 differs/);
  });
});

// Llama 3.1/3.2 RoPE scaling: Hugging Face keeps its parameters in config.json, llama.cpp a rope_freqs tensor of
// frequency divisors. Our GGUF holds both (the parameters in dynact.rope.llama3.* keys); a llama.cpp GGUF has the
// divisors alone. Each runs as its source does, and a bad rope_freqs or key is refused by name.
describe("rope_freqs (llama3 RoPE scaling as llama.cpp stores it)", () => {
  // originalContext 16 with factor 8: long wavelengths are slowed, short ones kept, the middle ones blended.
  const llama3 = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16 } as const;
  const config: LlamaConfig = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 80, seqLen: 48,
    ropeTheta: 500000, normEps: 1e-5, activation: "silu", ropeScaling: llama3 };
  const weights = randomWeights(config, 11);
  const tensor = (n: string) => Float32Array.from(weights(n));
  const hf = path.join(dir, "llama3-hf");
  writeSafetensors(hf, config, tensor, { dtype: "f32", tied: false });
  const ids = Array.from({ length: 40 }, (_, i) => (i * 13 + 5) % 80);
  const want = () => lastLogits(buildModel(openCheckpoint(hf)), ids);

  test("a GGUF written from the HF model holds rope_freqs and the parameters: the HF model's logits exactly, and back to config.json", () => {
    const file = path.join(dir, "llama3.gguf");
    writeGguf(file, config, tensor, { dtype: "f32", tied: false });
    const g = readGgufFile(file);
    const entry = g.tensors.find((t) => t.name === "rope_freqs.weight")!;
    expect(entry.shape).toEqual([8]);
    const ckpt = readGgufCheckpoint(file);
    expect(ckpt.config.ropeScaling).toEqual(llama3);
    // What llama.cpp reads: the highest frequency (wavelength 2π, between 16/4 and 16/1) is blended,
    // 1 / ((1 - s)/8 + s) with s = (16/2π - 1)/3; the lowest is slowed by the whole factor.
    const factors = new Float32Array(Uint8Array.from(readFileSync(file).subarray(entry.offset, entry.offset + 32)).buffer);
    const s = (16 / (2 * Math.PI) - 1) / 3;
    expect(factors[0]).toBeCloseTo(1 / ((1 - s) / 8 + s), 5);
    expect(factors[7]).toBeCloseTo(8, 5);
    expect(lastLogits(buildModel(ckpt), ids)).toEqual(want());
    // GGUF -> config.json gives the parameters back, and the same model.
    const back = path.join(dir, "llama3-back");
    writeSafetensors(back, ckpt.config, tensor, { dtype: "f32", tied: false });
    expect(openCheckpoint(back).config.ropeScaling).toEqual(llama3);
    expect(lastLogits(buildModel(openCheckpoint(back)), ids)).toEqual(want());
  });

  test("a llama.cpp GGUF (rope_freqs alone) runs by its divisors: the HF model's logits to 1e-5, kept GGUF to GGUF", () => {
    const divisors = llama3FreqFactors(config.dim / config.nHeads, config.ropeTheta, llama3);
    const file = path.join(dir, "llama3-cpp.gguf");
    writeGguf(file, { ...config, ropeScaling: { type: "divisors", divisors } }, tensor, { dtype: "f32", tied: false });
    expect([...readGgufFile(file).metadata.keys()].filter((k) => k.startsWith("dynact."))).toEqual([]);
    const ckpt = readGgufCheckpoint(file);
    expect(ckpt.config.ropeScaling).toEqual({ type: "divisors", divisors });
    // The divisors are rounded to f32 from frequencies the HF path computes otherwise: close, not equal.
    expect(relError(lastLogits(buildModel(ckpt), ids), want())).toBeLessThan(1e-5);
    // And the scaling matters here: without it the logits are far off.
    const unscaled = path.join(dir, "llama3-unscaled.gguf");
    writeGguf(unscaled, { ...config, ropeScaling: undefined }, tensor, { dtype: "f32", tied: false });
    expect(relError(lastLogits(buildModel(readGgufCheckpoint(unscaled)), ids), want())).toBeGreaterThan(1e-3);
    const again = path.join(dir, "llama3-again.gguf");
    writeGguf(again, ckpt.config, tensor, { dtype: "f32", tied: false });
    expect(readGgufCheckpoint(again).config.ropeScaling).toEqual(ckpt.config.ropeScaling);
    expect(() => writeSafetensors(path.join(dir, "llama3-cpp-back"), ckpt.config, tensor, { dtype: "f32", tied: false }))
      .toThrow(/rope_scaling: the model's RoPE scaling is llama\.cpp's rope_freqs divisors/);
  });

  test("dynact.rope.llama3 keys: all four or none, with their rope_freqs, agreeing with it", () => {
    const file = path.join(dir, "llama3.gguf");
    writeGguf(file, config, tensor, { dtype: "f32", tied: false });
    const g = readGgufFile(file);
    expect(() => ggufCheckpoint({ ...g, tensors: g.tensors.filter((t) => t.name !== "rope_freqs.weight") }, "t.gguf"))
      .toThrow(/t\.gguf: rope_freqs\.weight: tensor missing \(the dynact\.rope\.llama3 keys come with it\)/);
    const without = (key: string) => new Map([...g.metadata].filter(([k]) => k !== key));
    expect(() => ggufCheckpoint({ ...g, metadata: without("dynact.rope.llama3.factor") }, "t.gguf"))
      .toThrow(/t\.gguf: dynact\.rope\.llama3\.factor: missing/);
    const swapped = new Map(g.metadata).set("dynact.rope.llama3.low_freq_factor", { type: "f64", value: 5 });
    expect(() => ggufCheckpoint({ ...g, metadata: swapped }, "t.gguf"))
      .toThrow(/dynact\.rope\.llama3\.high_freq_factor: 4 must exceed the low frequency factor 5/);
    const negative = new Map(g.metadata).set("dynact.rope.llama3.factor", { type: "f64", value: -8 });
    expect(() => ggufCheckpoint({ ...g, metadata: negative }, "t.gguf")).toThrow(/t\.gguf: dynact\.rope\.llama3\.factor: -8 is not a positive number/);
    const t = g.tensors.find((x) => x.name === "rope_freqs.weight")!;
    const bytes = Buffer.from(readFileSync(file));
    bytes.writeFloatLE(2.5, t.offset + 12);
    const edited = path.join(dir, "llama3-edited.gguf");
    writeFileSync(edited, bytes);
    expect(() => readGgufCheckpoint(edited)).toThrow(/llama3-edited\.gguf: rope_freqs\.weight: divisor 3 is 2\.5 but the dynact\.rope\.llama3 keys give /);
  });

  test("a rope_freqs of the wrong type, shape or values is a FormatError naming it", () => {
    // llama.cpp's form (rope_freqs alone): with the dynact keys the divisors must also agree with them (below).
    const good = path.join(dir, "llama3-divisors.gguf");
    const divisors = llama3FreqFactors(config.dim / config.nHeads, config.ropeTheta, llama3);
    writeGguf(good, { ...config, ropeScaling: { type: "divisors", divisors } }, tensor, { dtype: "f32", tied: false });
    const g = readGgufFile(good);
    const t = g.tensors.find((x) => x.name === "rope_freqs.weight")!;
    expect(() => ggufCheckpoint({ ...g, tensors: g.tensors.map((x) => (x === t ? { ...x, shape: [4] } : x)) }, "t.gguf"))
      .toThrow(/t\.gguf: rope_freqs\.weight: f32 \[4\]; expected f32 \[8\]/);
    expect(() => ggufCheckpoint({ ...g, tensors: g.tensors.map((x) => (x === t ? { ...x, dtype: "f16" as const } : x)) }, "t.gguf"))
      .toThrow(/rope_freqs\.weight: f16 \[8\]; expected f32 \[8\]/);
    const bytes = Buffer.from(readFileSync(good));
    bytes.writeFloatLE(-2, t.offset + 12);
    const bad = path.join(dir, "llama3-bad.gguf");
    writeFileSync(bad, bytes);
    expect(() => readGgufCheckpoint(bad)).toThrow(/llama3-bad\.gguf: rope_freqs\.weight: divisor 3 is -2; divisors must be finite and positive/);
  });
});
