// Files written by the reference writers (llama.cpp's gguf-py and Hugging Face's safetensors; see
// test/fixtures/formats/make.py): every GGUF value type, a custom alignment, each tensor type, and an HF folder
// whose q/k rows went through transformers' permute(). Our reader must see exactly what they wrote.
import path from "node:path";
import { describe, expect, test } from "vitest";
import { dequantize, quantize } from "../engine/quant";
import type { DType } from "../engine/dtype";
import { readGgufCheckpoint, readGgufFile } from "../models/formats/gguf";
import { readSafetensorsCheckpoint } from "../models/formats/safetensors";
import { readTensorData } from "../models/weights";
import { FIXTURES } from "./assets";

const dir = path.join(FIXTURES, "formats");
const f32 = readGgufCheckpoint(path.join(dir, "tiny-f32.gguf"));
/** The f32 values as stored in `dtype` and read back: what a file of that type written from them holds. */
const roundTrip = (dtype: DType, name: string): Float32Array => {
  const v = readTensorData(f32, name);
  return dequantize(dtype, quantize(dtype, v), v.length);
};
const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("gguf-py's tiny-mixed.gguf", () => {
  const file = path.join(dir, "tiny-mixed.gguf");
  const g = readGgufFile(file);
  const ckpt = readGgufCheckpoint(file);

  test("every metadata value type", () => {
    const v = (k: string) => g.metadata.get(`test.${k}`);
    expect(v("u8")).toEqual({ type: "u8", value: 255 });
    expect(v("i8")).toEqual({ type: "i8", value: -128 });
    expect(v("u16")).toEqual({ type: "u16", value: 65535 });
    expect(v("i16")).toEqual({ type: "i16", value: -32768 });
    expect(v("u32")).toEqual({ type: "u32", value: 2 ** 32 - 1 });
    expect(v("i32")).toEqual({ type: "i32", value: -(2 ** 31) });
    expect(v("f32")).toEqual({ type: "f32", value: 0.5 });
    expect(v("bool")).toEqual({ type: "bool", value: true });
    expect(v("string")).toEqual({ type: "string", value: "▁héllo" });
    expect(v("u64")).toEqual({ type: "u64", value: 2n ** 64n - 1n });
    expect(v("i64")).toEqual({ type: "i64", value: -(2n ** 63n) });
    expect(v("f64")).toEqual({ type: "f64", value: 0.1 });
    expect(v("nested")).toEqual({ type: "array", value: { itemType: "array", items: [
      { itemType: "string", items: ["a", "bc"] }, { itemType: "i32", items: [1, 2, 3] }] } });
  });

  test("general.alignment 64, the llama config, and the ggml dim order", () => {
    expect(g.alignment).toBe(64);
    for (const t of g.tensors) expect(t.offset % 64).toBe(0);
    expect(ckpt.config).toEqual({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 16,
      ropeTheta: 500000, normEps: 1e-6, activation: "silu" });
    expect(ckpt.tensors.get("blk.0.attn_k")!.shape).toEqual([16, 32]); // stored as ne = [32, 16]
  });

  test("each tensor type holds the values gguf-py quantized, bit for bit", () => {
    const want: Record<string, DType> = { token_embd: "q8_0", output: "q4_0", "blk.0.attn_q": "f16", "blk.0.attn_k": "bf16", "blk.0.ffn_up": "q4_0" };
    for (const [name, e] of ckpt.tensors) {
      const dtype = want[name] ?? "f32";
      expect(e.dtype).toBe(dtype);
      expect(sameBits(readTensorData(ckpt, name), roundTrip(dtype, name))).toBe(true);
    }
  });
});

test("safetensors' tiny-hf: F16 tensors, q/k rows back from transformers' permute()", () => {
  const hf = readSafetensorsCheckpoint(path.join(dir, "tiny-hf"));
  expect(hf.config).toEqual(f32.config);
  expect(hf.tensors.size).toBe(f32.tensors.size);
  for (const [name, e] of hf.tensors) {
    expect(e.dtype).toBe("f16");
    expect(sameBits(readTensorData(hf, name), roundTrip("f16", name))).toBe(true);
  }
});
