// tokenizer.json through @huggingface/tokenizers. LLaMA-2 style: a tokenizer.json built from the llama2.c
// vocabulary the way transformers converts it gives run.c's ids on a varied corpus. Byte-level BPE (LLaMA-3,
// GPT-2/SmolLM pre-tokenizers): a small vocabulary with known merges and hand-computed ids.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynactError } from "../engine/errors";
import { FormatError } from "../models/formats/format-error";
import { writeSafetensors } from "../models/formats/safetensors";
import { readLlama2cCheckpoint } from "../models/formats/llama2c";
import { loadModel } from "../models/load";
import { readLlama2cTokenizer, type SentencePieceBpeTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { StreamDecoder } from "../models/tokenizer/stream-decoder";
import { readTokenizerJson, TokenizerJson } from "../models/tokenizer/tokenizer-json";
import { readTensorData } from "../models/weights";
import { FIXTURES, haveAssets, shared } from "./assets";
import { BOT, byteLevelJson, c, EOT, template } from "./byte-level-vocab";
import { sentencePieceTokenizerJson } from "./sentencepiece-json";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-tokjson-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeTokenizer(folder: string, json: object, config?: object): string {
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, "tokenizer.json");
  writeFileSync(file, JSON.stringify(json));
  if (config) writeFileSync(path.join(folder, "tokenizer_config.json"), JSON.stringify(config));
  return file;
}

/** Every `step`-th non-empty line of a shared text, as plain text. */
function sample(rel: string, step: number, pick: (line: string) => string = (l) => l): string[] {
  const lines = readFileSync(shared(rel), "utf8").split("\n").filter((l) => l.trim() !== "");
  return lines.filter((_, i) => i % step === 0).map(pick);
}

describe.runIf(haveAssets("models/llama2-tokenizer.bin", "models/tok512.bin", "data/tinystories_val.txt", "data/wiki.test.raw",
  "data/hellaswag_val_1000.jsonl", "data/openbookqa_test.jsonl"))("LLaMA-2 tokenizer.json built from the llama2.c vocabulary", () => {
  let sp: SentencePieceBpeTokenizer;
  let hf: TokenizerJson;
  let json: { model: object; normalizer: unknown; pre_tokenizer: unknown; decoder: unknown };
  let corpus: string[];

  beforeAll(() => {
    sp = readLlama2cTokenizer(shared("models/llama2-tokenizer.bin"));
    const built = sentencePieceTokenizerJson(sp);
    json = built.json as typeof json;
    hf = readTokenizerJson(writeTokenizer(path.join(dir, "llama2"), built.json, built.config));
    const fixture = JSON.parse(readFileSync(path.join(FIXTURES, "tokenizer-encode.json"), "utf8")) as { texts: string[] };
    corpus = [
      ...fixture.texts,
      ...sample("data/tinystories_val.txt", 40),
      ...sample("data/wiki.test.raw", 25), // leading spaces, " @-@ ", digits, accents, \r
      ...sample("data/hellaswag_val_1000.jsonl", 10, (l) => JSON.parse(l).ctx),
      ...sample("data/openbookqa_test.jsonl", 10, (l) => JSON.parse(l).question),
    ];
  });

  it("has the converter's shape: 32000 ids, 61249 merges, BOS/EOS from tokenizer_config.json", () => {
    expect(hf.vocabSize).toBe(32000);
    expect(hf.bosId).toBe(1);
    expect(hf.eosId).toBe(2);
    expect((json.model as { merges: unknown[] }).merges).toHaveLength(61249);
    expect(corpus.length).toBeGreaterThan(350);
  });

  it("encodes a varied corpus exactly like the tokenizer.bin path (run.c)", () => {
    const differ = corpus.filter((t) => JSON.stringify(hf.encode(t)) !== JSON.stringify(sp.encode(t)));
    expect(differ).toEqual([]);
    expect(hf.encode("Hello world!", { bos: false, eos: true })).toEqual(sp.encode("Hello world!", { bos: false, eos: true }));
    expect(hf.encode("")).toEqual([1]); // no dummy prefix for empty text, like run.c
  });

  it("renders every piece as the llama2.c tokenizer does (space for ▁, <0xNN> as its byte, strip after BOS)", () => {
    // Only BOS/EOS ("\n<s>\n" in tokenizer.bin) and <0x00> (a C string in run.c, so nothing) differ; and
    // <0x20> right after BOS: HF's Strip decoder drops the space it decodes to, run.c strips only a piece's own.
    const differ = (prev: number) => Array.from({ length: 32000 }, (_, id) => id).filter((id) =>
      Buffer.compare(hf.pieceBytes(prev, id), sp.pieceBytes(prev, id)) !== 0);
    expect(differ(450)).toEqual([1, 2, 3]);
    expect(differ(1)).toEqual([1, 2, 3, 35]);
    const ids = hf.encode("café 🙂 done", { bos: true });
    expect(hf.decode(ids.slice(1), 1)).toBe("café 🙂 done");
    expect(hf.pieceBytes(1, 13)).toEqual(Uint8Array.of(0x0a)); // <0x0A>
  });

  it("streams a byte-fallback character whole", () => {
    const ids = hf.encode("🙂", { bos: false }).slice(1); // after the dummy prefix: 4 byte pieces
    expect(ids).toHaveLength(4);
    const stream = new StreamDecoder(hf);
    expect(ids.map((id, i) => stream.push(i === 0 ? 29871 : ids[i - 1]!, id))).toEqual(["", "", "", "🙂"]);
  });

  it("Metaspace pre-tokenizer form: no dummy prefix when the text starts with a space (HF's rule), else the same ids", () => {
    // transformers' newer converter (legacy=false) writes Metaspace(prepend_scheme "first") instead of the
    // Prepend normalizer. HF's Metaspace skips the prefix when the text already starts with "▁", where
    // SentencePiece and run.c add one anyway: hf(" x") == run.c("x") (for " " alone, run.c("") has no prefix at
    // all). We follow the file, as transformers does.
    const meta = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
    const form = { ...json, normalizer: null, pre_tokenizer: meta, decoder: { type: "Sequence", decoders: [meta, { type: "ByteFallback" }, { type: "Fuse" }] } };
    const m = new TokenizerJson("metaspace", form, { bos_token: "<s>", eos_token: "</s>" });
    const leading = corpus.filter((t) => t.startsWith(" "));
    expect(leading.length).toBeGreaterThan(20);
    expect(corpus.filter((t) => t !== " " && JSON.stringify(m.encode(t)) !== JSON.stringify(sp.encode(t.startsWith(" ") ? t.slice(1) : t)))).toEqual([]);
    expect(m.decode(m.encode("Once upon").slice(1), 1)).toBe("Once upon");
  });

  it("differs from run.c where HF defines text differently: special-token strings, NUL", () => {
    // HF splits added tokens out of the text (as transformers does); run.c spells them out piece by piece.
    expect(hf.encode("a</s>b", { bos: false })).toContain(2);
    expect(sp.encode("a</s>b", { bos: false })).not.toContain(2);
    // run.c reads a C string, so it stops at NUL; HF encodes the rest.
    expect(hf.encode("x\0y").length).toBeGreaterThan(sp.encode("x\0y").length);
  });

  it("loadModel picks tokenizer.json in a Hugging Face folder (and -t takes the folder or the file)", () => {
    const bin = readLlama2cCheckpoint(shared("models/stories260K.bin"));
    const tok512 = readLlama2cTokenizer(shared("models/tok512.bin"));
    const folder = path.join(dir, "stories-hf");
    writeSafetensors(folder, bin.config, (n) => readTensorData(bin, n === "output" ? "token_embd" : n), { dtype: "f32", tied: true });
    const built = sentencePieceTokenizerJson(tok512);
    writeTokenizer(folder, built.json, built.config);
    const loaded = loadModel(folder);
    expect(loaded.tokenizer).toBeInstanceOf(TokenizerJson);
    for (const t of corpus.slice(0, 60)) expect(loaded.tokenizer.encode(t)).toEqual(tok512.encode(t));
    expect(loadModel(shared("models/stories260K.bin"), { tokenizer: folder }).tokenizer).toBeInstanceOf(TokenizerJson);
    expect(() => loadModel(folder, { tokenizer: path.join(dir, "llama2", "tokenizer.json") })).toThrow(/model\.vocab: ids span 32000 tokens, but the model has a vocabulary of 512: wrong tokenizer/);
  });
});

describe("byte-level BPE on a constructed vocabulary", () => {
  const b = (s: string) => [...new TextEncoder().encode(s)]; // byte ids
  const llama3 = new TokenizerJson("llama3", byteLevelJson("llama3"), {});
  const gpt2 = new TokenizerJson("gpt2", byteLevelJson("gpt2"), {});

  it("finds BOS from the post-processor or by name, EOS by name", () => {
    for (const t of [llama3, gpt2]) {
      expect([t.vocabSize, t.bosId, t.eosId]).toEqual([269, BOT, EOT]);
    }
    // The post-processor's template wins over names; tokenizer_config.json over both.
    const odd = { ...byteLevelJson("gpt2"), post_processor: template(EOT) };
    expect(new TokenizerJson("odd", odd, {}).bosId).toBe(EOT);
    expect(new TokenizerJson("cfg", odd, { bos_token: { content: "h" }, eos_token: "e" })).toMatchObject({ bosId: 104, eosId: 101 });
    expect(c("é")).toBe("Ã©");
  });

  it("LLaMA-3 pre-tokenizer regex: words, single spaces, digits in threes, contractions; ignore_merges", () => {
    // "hello" by merges 1,3,4,5; " the" by 0,1,2; " world" is itself a vocabulary entry.
    expect(llama3.encode("hello the world")).toEqual([BOT, 261, 258, 266]);
    // "café" | " " | "202" | "4" | "'s": no merge applies; é is the two bytes C3 A9.
    expect(llama3.encode("café 2024's")).toEqual([BOT, ...b("café"), 32, ...b("2024's")]);
    // "hi" | "\n\n" | "there" (only h+e merges without a leading Ġ).
    expect(llama3.encode("hi\n\nthere", { bos: false, eos: true })).toEqual([104, 105, 10, 10, 116, 257, 114, 101, EOT]);
  });

  it("GPT-2 pre-tokenizer regex: ' 2024' is one pre-token, so Ġ2 merges; no ignore_merges", () => {
    expect(gpt2.encode("hello the world")).toEqual([BOT, 261, 258, 264, 108, 100]);
    expect(gpt2.encode("café 2024's")).toEqual([BOT, ...b("café"), 265, ...b("024's")]);
  });

  it("added tokens in the text are their ids", () => {
    expect(llama3.encode("a<|end_of_text|>", { bos: false })).toEqual([97, EOT]);
  });

  it("decodes through the byte alphabet, characters split over tokens whole, no space stripped after BOS", () => {
    for (const t of [llama3, gpt2]) {
      for (const text of ["hello the world", "café 2024's", "hi\n\nthere", " lead"]) {
        expect(t.decode(t.encode(text).slice(1), t.bosId)).toBe(text);
      }
    }
    expect(llama3.pieceBytes(BOT, 32)).toEqual(Uint8Array.of(0x20));
    expect(llama3.pieceBytes(0, 266)).toEqual(new TextEncoder().encode(" world"));
    expect(llama3.pieceBytes(0, EOT)).toEqual(new TextEncoder().encode("<|end_of_text|>"));
    const stream = new StreamDecoder(llama3);
    expect([stream.push(0, 0xc3), stream.push(0xc3, 0xa9)]).toEqual(["", "é"]);
    expect(() => llama3.pieceBytes(0, 269)).toThrow(DynactError);
  });
});

describe("bad tokenizer.json", () => {
  const file = (name: string, text: string) => {
    const f = path.join(dir, "bad", name, "tokenizer.json");
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, text);
    return f;
  };
  const good = byteLevelJson("gpt2");

  it("is a FormatError naming the file and the field", () => {
    const cases: [string, string, RegExp][] = [
      ["syntax", "{ nope", /syntax.*tokenizer\.json: json:/],
      ["array", "[]", /json: is not a JSON object/],
      ["unigram", JSON.stringify({ ...good, model: { type: "Unigram", vocab: [] } }), /model\.type: "Unigram" is not supported \(only BPE\)/],
      ["no-vocab", JSON.stringify({ ...good, model: { ...good.model, vocab: undefined } }), /model\.vocab: missing/],
      ["no-merges", JSON.stringify({ ...good, model: { ...good.model, merges: 3 } }), /model\.merges: missing or not a list/],
      ["added", JSON.stringify({ ...good, added_tokens: [{ id: -1, content: "x" }] }), /added_tokens: is not a list/],
      ["normalizer", JSON.stringify({ ...good, normalizer: { type: "Frobnicate" } }), /tokenizer: Unknown Normalizer type: Frobnicate/],
      ["no-eos", JSON.stringify({ ...good, added_tokens: [] }), /eos_token: no end-of-sequence token/],
    ];
    for (const [name, text, pattern] of cases) {
      const f = file(name, text);
      let err: unknown;
      try {
        readTokenizerJson(f);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(FormatError);
      expect((err as Error).message, name).toContain(f);
      expect((err as Error).message, name).toMatch(pattern);
    }
  });

  it("ids spanning another size than the model's vocabulary are refused before the tokenizer is built", () => {
    // Built first, then compared: a 40 MB file of 2^21 ids exhausted a 256 MB heap inside the construction.
    const n = new TokenizerJson("t.json", good, {}).vocabSize;
    const vocab = { ...(good.model.vocab as Record<string, number>) };
    for (let i = 0; i < 2 ** 17; i++) vocab[`x${i}`] = n + i;
    const big = file("big", JSON.stringify({ ...good, model: { ...good.model, vocab } }));
    expect(() => readTokenizerJson(big, n)).toThrow(new FormatError(big, "model.vocab",
      `ids span ${n + 2 ** 17} tokens, but the model has a vocabulary of ${n}: wrong tokenizer for this model`));
    const far = file("far", JSON.stringify({ ...good, added_tokens: [...(good.added_tokens as object[]), { id: 2 ** 40, content: "x" }] }));
    expect(() => readTokenizerJson(far, n)).toThrow(/model\.vocab: ids span 1099511627777 tokens, but the model has a vocabulary of/);
    expect(readTokenizerJson(file("same", JSON.stringify(good)), n).vocabSize).toBe(n);
  });

  it("a tokenizer_config.json naming a token the vocabulary lacks is a FormatError", () => {
    const f = file("config", JSON.stringify(good));
    writeFileSync(path.join(path.dirname(f), "tokenizer_config.json"), JSON.stringify({ eos_token: { content: "</s>" } }));
    expect(() => readTokenizerJson(f)).toThrow(/tokenizer_config\.json: special token "<\/s>" is not in the vocabulary/);
  });
});

// Fuzz: the same three kinds of damage as the binary formats' suites (truncation, flipped bytes, lies in fields),
// on the small byte-level tokenizer.json (LLaMA-3 and GPT-2 forms) and, where the shared assets are, the 32000-piece
// SentencePiece one. Every case either builds a tokenizer that encodes and decodes with in-range ids, or is a
// FormatError (or DynactError) naming the file: never another exception, never a hang.
describe("tokenizer.json fuzz", () => {
  const f = path.join(dir, "fuzz", "tokenizer.json");
  mkdirSync(path.dirname(f), { recursive: true });
  let built = 0;
  let refused = 0;

  function check(data: string | Uint8Array, probe: string): void {
    writeFileSync(f, data);
    let tok: TokenizerJson;
    try {
      tok = readTokenizerJson(f);
    } catch (e) {
      if (!(e instanceof DynactError)) throw e; // FormatError is a DynactError
      expect((e as Error).message).toContain(f);
      refused++;
      return;
    }
    built++;
    try {
      const ids = tok.encode(probe, { bos: true });
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize)).toBe(true);
      tok.decode(ids);
    } catch (e) {
      if (!(e instanceof DynactError)) throw e;
    }
  }

  const goods = [JSON.stringify(byteLevelJson("llama3")), JSON.stringify(byteLevelJson("gpt2"))];
  const probe = fc.string({ maxLength: 16 });

  it("4,000 truncations", () => {
    fc.assert(fc.property(fc.nat(goods.length - 1), fc.double({ min: 0, max: 1, noNaN: true }), probe, (g, at, p) => {
      const text = goods[g]!;
      check(text.slice(0, Math.floor(at * text.length)), p);
    }), { numRuns: 4000 });
  });

  it("4,000 byte flips (bad UTF-8 included)", () => {
    fc.assert(fc.property(
      fc.nat(goods.length - 1),
      fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
      probe,
      (g, flips, p) => {
        const bytes = Buffer.from(goods[g]!);
        for (const { at, byte } of flips) bytes[Math.floor(at * bytes.length)] = byte;
        check(bytes, p);
      },
    ), { numRuns: 4000 });
  });

  // Lies: one field of the object replaced by any JSON value, including huge and negative ids.
  const fields: ((j: Json, v: unknown) => void)[] = [
    (j, v) => { j.model.vocab[Object.keys(j.model.vocab)[7]!] = v; },
    (j, v) => { j.model.merges[2] = v; },
    (j, v) => { j.model.merges = v; },
    (j, v) => { j.model.vocab = v; },
    (j, v) => { j.model.type = v; },
    (j, v) => { j.added_tokens[0].id = v; },
    (j, v) => { j.added_tokens[1].content = v; },
    (j, v) => { j.added_tokens = v; },
    (j, v) => { j.pre_tokenizer = v; },
    (j, v) => { j.decoder = v; },
    (j, v) => { j.normalizer = v; },
    (j, v) => { j.post_processor = v; },
    (j, v) => { j.model.byte_fallback = v; },
    (j, v) => { j.model.ignore_merges = v; },
  ];
  type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(-1, 2 ** 31, 2 ** 53, 1e300, 0.5, Number.MAX_SAFE_INTEGER, "", "\u0000", "Ġ", [], {}, null),
  );

  it(`${fields.length * 300} lies in fields`, () => {
    fc.assert(fc.property(fc.nat(goods.length - 1), fc.nat(fields.length - 1), value, probe, (g, k, v, p) => {
      const j = JSON.parse(goods[g]!) as Json;
      fields[k]!(j, v);
      check(JSON.stringify(j), p);
    }), { numRuns: fields.length * 300 });
    expect(built).toBeGreaterThan(100); // the suite saw working tokenizers as well as refusals
    expect(refused).toBeGreaterThan(100);
  });
});
