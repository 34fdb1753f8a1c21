// GGUF "gpt2" tokenizers (byte-level BPE with merges): the constructed byte-level vocabulary of the tokenizer.json
// tests, stored as tokenizer.ggml.* metadata, encodes to the same ids as through tokenizer.json (LLaMA-3 and GPT-2
// pre-tokenizers), decodes back to the text, survives writeGguf/convert, and bad metadata is a FormatError naming
// the field — never another exception.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DynactError } from "../engine/errors";
import type { LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { encodeGgufHeader, parseGgufHeader, readGgufTokenizer, writeGguf } from "../models/formats/gguf";
import type { GgufValue } from "../models/formats/gguf-metadata";
import { ggufTokenizer, ggufTokenizerMetadata } from "../models/formats/gguf-tokenizer";
import { writeSafetensors } from "../models/formats/safetensors";
import { loadModel } from "../models/load";
import { TokenizerJson } from "../models/tokenizer/tokenizer-json";
import { BOT, BYTE_CHAR, byteLevelJson, EOT, MERGES } from "./byte-level-vocab";
import { dynact } from "./cli-harness";
import { randomWeights } from "./train-util";

const NAME = "tok.gguf";
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-ggufbpe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEXTS = ["hello the world", "café 2024's", "hi\n\nthere", " lead", "Hello, World! 12345 the  hell\tor", "naïve — 日本語 🙂",
  "a<|end_of_text|>b", "<|begin_of_text|>hello", "'S 'LL 're", "", " ", "\n"];

// The test vocabulary as llama.cpp's converter writes it: ids in order, merges as "a b", special tokens CONTROL.
function gpt2Metadata(pre: string, over: Record<string, GgufValue | undefined> = {}): [string, GgufValue][] {
  const tokens = [...BYTE_CHAR, ...MERGES.map(([l, r]) => l! + r!), "Ġworld", "<|begin_of_text|>", "<|end_of_text|>"];
  const types = tokens.map((_, id) => (id === BOT || id === EOT ? 3 : 1));
  const meta: Record<string, GgufValue | undefined> = {
    "tokenizer.ggml.model": { type: "string", value: "gpt2" },
    "tokenizer.ggml.pre": { type: "string", value: pre },
    "tokenizer.ggml.tokens": { type: "array", value: { itemType: "string", items: tokens } },
    "tokenizer.ggml.token_type": { type: "array", value: { itemType: "i32", items: types } },
    "tokenizer.ggml.merges": { type: "array", value: { itemType: "string", items: MERGES.map(([l, r]) => `${l} ${r}`) } },
    "tokenizer.ggml.bos_token_id": { type: "u32", value: BOT },
    "tokenizer.ggml.eos_token_id": { type: "u32", value: EOT },
    ...over,
  };
  return Object.entries(meta).filter((e): e is [string, GgufValue] => e[1] !== undefined);
}

/** Through the file format: encode a header with these keys, parse it back, build the tokenizer. */
function fromHeader(meta: [string, GgufValue][]) {
  const head = encodeGgufHeader(meta, []);
  return ggufTokenizer(parseGgufHeader(head, head.length, NAME).metadata, NAME);
}

function expectFormatError(f: () => unknown, field: string, pattern: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, field).toBeInstanceOf(FormatError);
  expect((err as FormatError).field, String(err)).toBe(field);
  expect((err as FormatError).message).toMatch(pattern);
}

const strings = (items: readonly string[]): GgufValue => ({ type: "array", value: { itemType: "string", items: [...items] } });

describe("GGUF gpt2 tokenizer = the same vocabulary through tokenizer.json", () => {
  const cases = [["llama-bpe", "llama3"], ["gpt-2", "gpt2"]] as const;
  for (const [pre, style] of cases) {
    it(`${pre}: same ids, BOS/EOS, pieces and decoded text as tokenizer.json (${style} style)`, () => {
      const json = new TokenizerJson("tokenizer.json", byteLevelJson(style), {});
      const gguf = fromHeader(gpt2Metadata(pre));
      expect(gguf).toBeInstanceOf(TokenizerJson);
      expect([gguf.vocabSize, gguf.bosId, gguf.eosId]).toEqual([json.vocabSize, json.bosId, json.eosId]);
      for (const text of TEXTS) {
        const ids = gguf.encode(text);
        expect(ids, text).toEqual(json.encode(text));
        expect(gguf.decode(ids.slice(1), gguf.bosId), text).toBe(text);
      }
      for (let id = 0; id < gguf.vocabSize; id++) expect(gguf.pieceBytes(0, id)).toEqual(json.pieceBytes(0, id));
    });
  }

  it("property: any text gives the same ids both ways (llama.cpp's regexes as Split steps = tokenizer.json's)", () => {
    const pairs = cases.map(([pre, style]) => [fromHeader(gpt2Metadata(pre)), new TokenizerJson("t.json", byteLevelJson(style), {})] as const);
    const chars = fc.constantFrom("h", "e", "l", "o", "t", "w", "r", "2", "0", "'", "s", "S", "L", " ", "  ", "\n", "\r\n", "\t", ".", ",", "é", "日", "🙂", "٣", "\u00a0", "<|end_of_text|>");
    fc.assert(fc.property(fc.oneof(fc.array(chars, { maxLength: 24 }).map((a) => a.join("")), fc.string({ unit: "binary", maxLength: 24 })), (text) => {
      for (const [gguf, json] of pairs) expect(gguf.encode(text)).toEqual(json.encode(text));
    }), { numRuns: 500, seed: 7 });
  });

  it("the hand-computed ids of the tokenizer.json tests", () => {
    const llama3 = fromHeader(gpt2Metadata("llama-bpe"));
    const gpt2 = fromHeader(gpt2Metadata("gpt-2"));
    expect(llama3.encode("hello the world")).toEqual([BOT, 261, 258, 266]); // ignore_merges finds "Ġworld"
    expect(gpt2.encode("hello the world")).toEqual([BOT, 261, 258, 264, 108, 100]);
    expect(gpt2.encode("café 2024's", { bos: false })).toEqual([...new TextEncoder().encode("café")].concat([265], [...new TextEncoder().encode("024's")]));
  });

  it("pre-tokenizers: smollm splits digits, others split numbers off the space as llama.cpp does; BOS defaults to EOS; no pre key is llama.cpp's default", () => {
    const smollm = fromHeader(gpt2Metadata("smollm"));
    expect(smollm.encode(" 2024", { bos: false })).toEqual([32, 50, 48, 50, 52]); // no Ġ2 merge: digits split first
    // The pre-tokenizers that split numbers off the space before them never see "Ġ2" (merge 265); gpt-2's does.
    for (const pre of ["default", "qwen2", "starcoder", "falcon"]) {
      expect(fromHeader(gpt2Metadata(pre)).encode(" 2024", { bos: false })).toEqual([32, 50, 48, 50, 52]);
    }
    expect(fromHeader(gpt2Metadata("gpt-2")).encode(" 2024", { bos: false })).toEqual([265, 48, 50, 52]);
    const noBos = fromHeader(gpt2Metadata("gpt-2", { "tokenizer.ggml.bos_token_id": undefined }));
    expect(noBos.bosId).toBe(EOT);
    const noPre = fromHeader(gpt2Metadata("", { "tokenizer.ggml.pre": undefined }));
    expect(noPre.encode("hello the world")).toEqual(fromHeader(gpt2Metadata("default")).encode("hello the world"));
  });

  it("USER_DEFINED tokens are matched in the text and decode as their text; empty tokens get llama.cpp's name", () => {
    const meta = gpt2Metadata("gpt-2");
    const tokens = [...(meta.find(([k]) => k === "tokenizer.ggml.tokens")![1].value as { items: string[] }).items];
    const types = [...(meta.find(([k]) => k === "tokenizer.ggml.token_type")![1].value as { items: number[] }).items];
    tokens.push("my tag", "");
    types.push(4, 1);
    const t = fromHeader(gpt2Metadata("gpt-2", {
      "tokenizer.ggml.tokens": strings(tokens), "tokenizer.ggml.token_type": { type: "array", value: { itemType: "i32", items: types } },
    }));
    expect(t.vocabSize).toBe(271);
    expect(t.encode("a my tag", { bos: false })).toEqual([97, 32, 269]);
    expect(t.decode([97, 32, 269])).toBe("a my tag");
    expect(new TextDecoder().decode(t.pieceBytes(0, 270))).toBe("[EMPTY_270]");
  });
});

describe("writing a byte-level tokenizer.json into a GGUF", () => {
  const config: LlamaConfig = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 269, seqLen: 16,
    ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
  const weights = randomWeights(config, 7);
  const tensor = (name: string) => Float32Array.from(weights(name));

  it("ggufTokenizerMetadata writes what llama.cpp's converter would: pre name, types, merges", () => {
    for (const [style, pre] of [["llama3", "llama-bpe"], ["gpt2", "gpt-2"]] as const) {
      const meta = new Map(ggufTokenizerMetadata(new TokenizerJson("t.json", byteLevelJson(style), {})));
      const want = new Map(gpt2Metadata(pre));
      for (const [k, v] of want) expect(meta.get(k), k).toEqual(v);
      expect([...meta.keys()].sort()).toEqual([...want.keys()].sort());
    }
  });

  it("writeGguf + loadModel: the file's own tokenizer encodes as the tokenizer.json did", () => {
    for (const style of ["llama3", "gpt2"] as const) {
      const json = new TokenizerJson("t.json", byteLevelJson(style), {});
      const out = path.join(dir, `${style}.gguf`);
      writeGguf(out, config, tensor, { dtype: "f32", tied: true, tokenizer: json });
      const loaded = loadModel(out);
      expect(loaded.tokenizer).toBeInstanceOf(TokenizerJson);
      for (const text of TEXTS) expect(loaded.tokenizer.encode(text)).toEqual(json.encode(text));
      expect(readGgufTokenizer(out).decode(json.encode("café 2024's").slice(1), json.bosId)).toBe("café 2024's");
    }
  });

  it("tokenizers GGUF cannot hold are FormatErrors naming the field", () => {
    const good = byteLevelJson("gpt2");
    const write = (json: object) => () => ggufTokenizerMetadata(new TokenizerJson("t.json", json, {}));
    expectFormatError(write({ ...good, pre_tokenizer: { type: "Whitespace" } }), "pre_tokenizer", /not one of llama\.cpp's pre-tokenizers/);
    expectFormatError(write({ ...good, normalizer: { type: "NFC" } }), "normalizer", /cannot be stored as a GGUF gpt2 tokenizer/);
    expectFormatError(write({ ...good, model: { ...good.model, ignore_merges: true } }), "pre_tokenizer", /not one of/);
    expectFormatError(write({ ...good, decoder: { type: "Metaspace" } }), "decoder", /SentencePiece-style tokenizer\.json cannot be stored/);
    expectFormatError(write({ ...good, added_tokens: [...good.added_tokens, { ...good.added_tokens[0]!, id: 269, content: "he" }] }),
      "model.vocab", /repeats token 257/);
  });

  it("dynact convert writes a byte-level tokenizer.json as gpt2 metadata", () => {
    const folder = path.join(dir, "hf");
    mkdirSync(folder, { recursive: true });
    writeSafetensors(folder, config, tensor, { dtype: "f32", tied: true });
    writeFileSync(path.join(folder, "tokenizer.json"), JSON.stringify(byteLevelJson("llama3")));
    const out = path.join(dir, "converted.gguf");
    const r = dynact("convert", "-m", folder, "-o", out, "--to", "gguf", "--json");
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({ tokenizer: true });
    const json = new TokenizerJson("t.json", byteLevelJson("llama3"), {});
    const tok = readGgufTokenizer(out);
    for (const text of TEXTS) expect(tok.encode(text)).toEqual(json.encode(text));
    // A tokenizer.json GGUF cannot hold: a note without -t, an error with it.
    writeFileSync(path.join(folder, "tokenizer.json"), JSON.stringify({ ...byteLevelJson("gpt2"), pre_tokenizer: { type: "Whitespace" } }));
    const noted = dynact("convert", "-m", folder, "-o", out, "--to", "gguf");
    expect(noted.code).toBe(0);
    expect(noted.stderr).toMatch(/note: no tokenizer written \(.*pre_tokenizer: is not one of llama\.cpp's pre-tokenizers/);
    const refused = dynact("convert", "-m", folder, "-t", path.join(folder, "tokenizer.json"), "-o", out, "--to", "gguf");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^dynact: .*tokenizer\.json: pre_tokenizer: /);
  });
});

describe("bad gpt2 metadata is a FormatError naming the field", () => {
  it("targeted cases", () => {
    const i32s = (items: number[]): GgufValue => ({ type: "array", value: { itemType: "i32", items } });
    const merges = MERGES.map(([l, r]) => `${l} ${r}`);
    const types = Array.from({ length: 269 }, () => 1);
    const cases: [Record<string, GgufValue | undefined>, string, RegExp][] = [
      [{ "tokenizer.ggml.merges": undefined }, "tokenizer.ggml.merges", /missing/],
      [{ "tokenizer.ggml.merges": strings([...merges, "Ġ zzz"]) }, "tokenizer.ggml.merges", /merge 10 "Ġ zzz": "zzz" is not a token/],
      [{ "tokenizer.ggml.merges": strings([...merges, "q u"]) }, "tokenizer.ggml.merges", /merge 10 "q u": "qu" is not a token/],
      [{ "tokenizer.ggml.merges": strings(["Ġt"]) }, "tokenizer.ggml.merges", /merge 0 "Ġt" is not two tokens/],
      [{ "tokenizer.ggml.merges": i32s([1, 2]) }, "tokenizer.ggml.merges", /expected an array of string/],
      [{ "tokenizer.ggml.tokens": undefined }, "tokenizer.ggml.tokens", /missing/],
      [{ "tokenizer.ggml.tokens": i32s([1]) }, "tokenizer.ggml.tokens", /expected an array of string/],
      [{ "tokenizer.ggml.tokens": strings(["a", "b", "a"]), "tokenizer.ggml.token_type": undefined, "tokenizer.ggml.merges": strings([]),
        "tokenizer.ggml.bos_token_id": undefined, "tokenizer.ggml.eos_token_id": { type: "u32", value: 0 } }, "tokenizer.ggml.tokens", /token 2 "a" repeats token 0/],
      [{ "tokenizer.ggml.token_type": { type: "array", value: { itemType: "f32", items: [1] } } }, "tokenizer.ggml.token_type", /expected an array of i32/],
      [{ "tokenizer.ggml.token_type": i32s([1, 1]) }, "tokenizer.ggml.token_type", /2 types for 269 tokens/],
      [{ "tokenizer.ggml.token_type": i32s([...types.slice(1), 9]) }, "tokenizer.ggml.token_type", /type 9 of token 268/],
      [{ "tokenizer.ggml.pre": { type: "string", value: "tekken-9000" } }, "tokenizer.ggml.pre", /"tekken-9000" is not supported \(supported: default, llama3/],
      [{ "tokenizer.ggml.pre": { type: "u32", value: 3 } }, "tokenizer.ggml.pre", /expected a string/],
      [{ "tokenizer.ggml.eos_token_id": undefined }, "tokenizer.ggml.eos_token_id", /missing/],
      [{ "tokenizer.ggml.eos_token_id": { type: "u32", value: 269 } }, "tokenizer.ggml.eos_token_id", /269 is not a token id \(0\.\.268\)/],
      [{ "tokenizer.ggml.bos_token_id": { type: "f32", value: 1 } }, "tokenizer.ggml.bos_token_id", /expected an integer/],
      [{ "tokenizer.ggml.model": { type: "string", value: "bert" } }, "tokenizer.ggml.model", /"bert" tokenizers are not supported \(only llama and gpt2\)/],
    ];
    for (const [over, field, pattern] of cases) expectFormatError(() => fromHeader(gpt2Metadata("llama-bpe", over)), field, pattern);
  });

  it("a token count other than the model's vocabulary is refused before a piece is built (llama and gpt2)", () => {
    // 2^18 tokens for a model of 269: each became a piece (llama) or a vocabulary entry (gpt2) before loadTokenizer
    // compared the sizes; 2^21 of them (a 40 MB file) exhausted a 256 MB heap.
    const many = Array.from({ length: 2 ** 18 }, (_, i) => `t${i}`);
    for (const model of ["llama", "gpt2"]) {
      const meta = new Map(gpt2Metadata("llama-bpe", {
        "tokenizer.ggml.model": { type: "string", value: model }, "tokenizer.ggml.tokens": strings(many),
        "tokenizer.ggml.scores": { type: "array", value: { itemType: "f32", items: many.map(() => 0) } },
      }));
      expectFormatError(() => ggufTokenizer(meta, NAME, 269), "tokenizer.ggml.tokens",
        /: 262144 tokens, but the model has a vocabulary of 269: wrong tokenizer for this model$/);
    }
    expect(fromHeader(gpt2Metadata("llama-bpe")).vocabSize).toBe(269); // and the right count builds
    const head = encodeGgufHeader(gpt2Metadata("llama-bpe"), []);
    expect(ggufTokenizer(parseGgufHeader(head, head.length, NAME).metadata, NAME, 269).vocabSize).toBe(269);
  });

  it("fuzz: random tokens, merges, types and ids build a tokenizer or fail with a FormatError", () => {
    let built = 0;
    let roundTrips = 0;
    const piece = fc.oneof(fc.constantFrom(...BYTE_CHAR.slice(0, 40), "Ġt", "he", "hell", "<|x|>", " ", ""), fc.string({ maxLength: 4 }));
    // Mostly well-formed: merges of two tokens whose concatenation is a token, types of the right length,
    // EOS in range; now and then a stray merge string, a wrong type or id, a repeated token.
    const vocab = fc.tuple(fc.array(piece, { minLength: 1, maxLength: 20 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 12 })).chain(([base, pairs]) => {
      const parts = [...new Set([...BYTE_CHAR.slice(0, 40), ...base])];
      const merged = pairs.map(([i, j]): [string, string] => [parts[i % parts.length]!, parts[j % parts.length]!]);
      const tokens = [...new Set([...parts, ...merged.map(([x, y]) => x + y)])];
      return fc.tuple(
        fc.oneof({ weight: 9, arbitrary: fc.constant(tokens) }, { weight: 1, arbitrary: fc.constant([...tokens, tokens[0]!]) }),
        fc.oneof({ weight: 5, arbitrary: fc.constant(merged.map(([x, y]) => `${x} ${y}`)) },
          { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }).map((junk) => [...merged.map(([x, y]) => `${x} ${y}`), ...junk]) }),
        fc.oneof({ weight: 3, arbitrary: fc.constant([] as number[]) },
          { weight: 6, arbitrary: fc.array(fc.constantFrom(1, 1, 1, 3, 4, 5, 6), { minLength: tokens.length, maxLength: tokens.length }) },
          { weight: 1, arbitrary: fc.array(fc.integer({ min: -2, max: 8 }), { maxLength: 60 }) }),
        fc.oneof({ weight: 9, arbitrary: fc.nat(tokens.length - 1) }, { weight: 1, arbitrary: fc.integer({ min: -1, max: 80 }) }),
      );
    });
    fc.assert(
      fc.property(
        vocab,
        // Any text, or text of bytes 0-39 only, whose byte-level characters every vocabulary here has.
        fc.oneof(fc.string({ maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 39 }), { maxLength: 12 }).map((b) => String.fromCharCode(...b))),
        ([tokens, merges, types, eos], text) => {
          const meta = gpt2Metadata("gpt-2", {
            "tokenizer.ggml.tokens": strings(tokens), "tokenizer.ggml.merges": strings(merges),
            "tokenizer.ggml.token_type": types.length === 0 ? undefined : { type: "array", value: { itemType: "i32", items: types } },
            "tokenizer.ggml.bos_token_id": undefined,
            "tokenizer.ggml.eos_token_id": eos < 0 ? undefined : { type: "u32", value: eos },
          });
          let tok;
          try {
            tok = fromHeader(meta);
            built++;
          } catch (e) {
            if (!(e instanceof FormatError)) throw e;
            expect(e.message.startsWith(`${NAME}: tokenizer.ggml.`)).toBe(true);
            return;
          }
          expect(tok.vocabSize).toBe(tokens.length);
          try {
            const ids = tok.encode(text, { bos: false });
            expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tokens.length)).toBe(true);
            const back = tok.decode(ids);
            // Byte-level BPE loses nothing when every byte of the text has its token (a missing one is dropped,
            // as llama.cpp and HF tokenizers drop it) and all tokens are normal (no types = all normal): control
            // and user-defined tokens are matched in and rendered from raw text by rules of their own.
            const bytesKnown = [...new TextEncoder().encode(text)].every((b) => tokens.includes(BYTE_CHAR[b]!));
            if (bytesKnown && (types.length === 0 || types.every((t) => t === 1))) {
              expect(back).toBe(text);
              roundTrips++;
            }
          } catch (e) {
            if (!(e instanceof DynactError)) throw e; // a vocabulary without some byte cannot encode every text
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
    expect(built).toBeGreaterThan(30); // the property saw working tokenizers, not only errors
    expect(roundTrips).toBeGreaterThan(10); // and texts that went through encode and decode and came back
  });
});
