// A small byte-level BPE vocabulary with known merges, as tokenizer.json (LLaMA-3 and GPT-2 pre-tokenizer styles):
// shared by the tokenizer.json tests and the GGUF gpt2 tokenizer tests, and a tiny random model carrying it (a
// model whose BOS is 267, not 1).
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { LlamaConfig } from "../models/config";
import { writeGguf } from "../models/formats/gguf";
import { TokenizerJson } from "../models/tokenizer/tokenizer-json";
import { randomWeights } from "./train-util";

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest for U+0100 onwards in byte order.
export const BYTE_CHAR = (() => {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
})();
export const c = (s: string) => [...new TextEncoder().encode(s)].map((b) => BYTE_CHAR[b]!).join("");

// Ids 0..255 are the bytes; merge rank r makes id 256 + r; "Ġworld" (266) is in the vocabulary but no merge
// makes it (only ignore_merges, as LLaMA-3 sets it, finds it); then the two special tokens.
export const MERGES = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["Ġ", "2"]];
export const BOT = 267;
export const EOT = 268;
export const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** LLaMA's post-processor: the special token `id`, then the text. */
export function template(id: number) {
  const name = id === BOT ? "<|begin_of_text|>" : "<|end_of_text|>";
  return {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: name, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [],
    special_tokens: { [name]: { id: name, ids: [id], tokens: [name] } },
  };
}

export function byteLevelJson(style: "llama3" | "gpt2") {
  const vocab: Record<string, number> = {};
  BYTE_CHAR.forEach((ch, b) => (vocab[ch] = b));
  MERGES.forEach(([l, r], i) => (vocab[l! + r!] = 256 + i));
  vocab["Ġworld"] = 266;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: style === "gpt2" };
  return {
    version: "1.0",
    added_tokens: [special(BOT, "<|begin_of_text|>"), special(EOT, "<|end_of_text|>")],
    normalizer: null,
    pre_tokenizer: style === "gpt2" ? byteLevel : {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: LLAMA3_SPLIT }, behavior: "Isolated", invert: false }, byteLevel],
    },
    post_processor: style === "gpt2" ? null : { type: "Sequence", processors: [byteLevel, template(BOT)] },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: style === "llama3", vocab, merges: MERGES,
    },
  };
}

/** A tiny random f32 GGUF with this vocabulary (gpt2 style) embedded, and a short text it tokenizes, in `dir`. */
export function byteLevelModel(dir: string, name: string, seed: number): { model: string; text: string } {
  const config: LlamaConfig = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 269, seqLen: 40,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const weights = randomWeights(config, seed);
  const model = path.join(dir, `${name}.gguf`);
  writeGguf(model, config, (n) => Float32Array.from(weights(n)), { dtype: "f32", tied: true,
    tokenizer: new TokenizerJson("t.json", byteLevelJson("gpt2"), {}) });
  const text = path.join(dir, `${name}.txt`);
  writeFileSync(text, "hello the world, hello the hell of 2024's world; café naïve\n".repeat(6));
  return { model, text };
}
