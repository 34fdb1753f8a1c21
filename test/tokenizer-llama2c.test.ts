import { readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { DynactError } from "../engine/errors";
import { FormatError } from "../models/formats/format-error";
import {
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
  type SentencePieceBpeTokenizer,
} from "../models/tokenizer/sentencepiece-bpe";
import { StreamDecoder } from "../models/tokenizer/stream-decoder";
import { FIXTURES, haveAssets, shared } from "./assets";

/** A tokenizer.bin: int32 max_token_length, then per piece f32 score, int32 length, bytes. */
function tokenizerBin(maxTokenLength: number, entries: readonly (readonly [string | Uint8Array, number])[]): Uint8Array {
  const pieces = entries.map(([p]) => (typeof p === "string" ? new TextEncoder().encode(p) : p));
  const out = new Uint8Array(4 + pieces.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, maxTokenLength, true);
  let offset = 4;
  entries.forEach(([, score], i) => {
    view.setFloat32(offset, score, true);
    view.setInt32(offset + 4, pieces[i]!.length, true);
    out.set(pieces[i]!, offset + 8);
    offset += 8 + pieces[i]!.length;
  });
  return out;
}

const SPECIALS = [["<unk>", 0], ["\n<s>\n", 0], ["\n</s>\n", 0]] as const;
const BYTE_PIECES = Array.from(
  { length: 256 },
  (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0] as const,
);

type Encode = (text: string, bos: boolean, eos: boolean) => number[];

/**
 * run.c's encode(), ported line by line (quadratic merge loop): the oracle for the fast encoder. Pieces are C
 * strings; on duplicate pieces the lowest id wins, as in the implementation.
 */
function runcEncoder(tok: SentencePieceBpeTokenizer): Encode {
  const str = tok.pieces.map((p) => {
    const nul = p.indexOf(0);
    return String.fromCharCode(...(nul < 0 ? p : p.subarray(0, nul)));
  });
  const sorted = new Map<string, number>();
  str.forEach((s, id) => {
    if (!sorted.has(s)) sorted.set(s, id);
  });
  const lookup = (s: string): number => sorted.get(s) ?? -1;

  return (text, bos, eos) => {
    const tokens: number[] = [];
    if (bos) tokens.push(1);
    const nul = text.indexOf("\0");
    const c = new TextEncoder().encode(nul < 0 ? text : text.slice(0, nul));
    if (c.length > 0) tokens.push(lookup(" "));
    let buffer: number[] = [];
    for (let i = 0; i < c.length; i++) {
      if ((c[i]! & 0xc0) !== 0x80) buffer = [];
      buffer.push(c[i]!);
      if (i + 1 < c.length && (c[i + 1]! & 0xc0) === 0x80 && buffer.length < 4) continue;
      const id = lookup(String.fromCharCode(...buffer));
      if (id !== -1) tokens.push(id);
      else for (const b of buffer) tokens.push(b + 3);
      buffer = [];
    }
    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = lookup(str[tokens[i]!]! + str[tokens[i + 1]!]!);
        if (id !== -1 && tok.scores[id]! > bestScore) {
          bestScore = tok.scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    if (eos) tokens.push(2);
    return tokens;
  };
}

/**
 * Random text: ASCII, accented letters, CJK, emoji (🌍 𝕜 𝓝 are 4-byte pieces of LLaMA 2's vocabulary), whitespace
 * runs, lone surrogates, and the given pieces.
 */
function textArb(pieces: readonly string[]): fc.Arbitrary<string> {
  return fc
    .array(
      fc.oneof(
        fc.string({ unit: "grapheme-ascii", maxLength: 6 }),
        fc.string({ unit: "binary", maxLength: 3 }),
        fc.string({ unit: fc.nat(0xffff).map((c) => String.fromCharCode(c)), maxLength: 2 }),
        fc.constantFrom(" ", "  ", "\n", "\t", "\r\n", "\u00a0", "\u200b", "\ufeff"),
        fc.constantFrom("é", "ï", "中文", "Привет", "😀", "🚀🙂", "🌍", "𝕜𝓝"),
        fc.nat(pieces.length - 1).map((i) => pieces[i]!),
      ),
      { maxLength: 24 },
    )
    .map((parts) => parts.join(""));
}

const ASSETS = ["models/tok512.bin", "models/llama2-tokenizer.bin", "data/tinystories_val.txt"];

describe.runIf(haveAssets(...ASSETS))("llama2.c tokenizer on the shared vocabularies", () => {
  const fixture = JSON.parse(readFileSync(path.join(FIXTURES, "tokenizer-encode.json"), "utf8")) as {
    texts: string[];
    tinystories_line_count: number;
    tok512: { texts: number[][]; tinystories: number[][] };
    llama2: { texts: number[][]; tinystories: number[][] };
  };
  const vocabs = {
    tok512: { file: "models/tok512.bin", size: 512, maxTokenLength: 7 },
    llama2: { file: "models/llama2-tokenizer.bin", size: 32000, maxTokenLength: 27 },
  };
  // Assets are read in beforeAll: suite bodies run even when runIf skips the suite.
  let tinystories: string[];
  beforeAll(() => {
    tinystories = readFileSync(shared("data/tinystories_val.txt"), "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .slice(0, fixture.tinystories_line_count);
  });

  it("encodes the classic prompt like run.c", () => {
    const tok = readLlama2cTokenizer(shared(vocabs.llama2.file));
    expect(tok.encode("Once upon a time")).toEqual([1, 9038, 2501, 263, 931]);
  });

  describe.each(Object.entries(vocabs))("%s", (key, { file, size, maxTokenLength }) => {
    const expected = fixture[key as keyof typeof vocabs];
    let tok: SentencePieceBpeTokenizer;
    let pieces: string[];
    beforeAll(() => {
      tok = readLlama2cTokenizer(shared(file));
      pieces = tok.pieces.map((p) => new TextDecoder().decode(p));
    });

    it("reads every piece", () => {
      expect(tok.vocabSize).toBe(size);
      expect(tok.maxTokenLength).toBe(maxTokenLength);
      expect([tok.bosId, tok.eosId]).toEqual([1, 2]);
      expect(pieces.slice(0, 4)).toEqual(["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]);
    });

    it("encodes the fixture texts exactly as run.c", () => {
      expect(fixture.texts.map((t) => tok.encode(t))).toEqual(expected.texts);
    });

    it("encodes TinyStories lines exactly as run.c", () => {
      expect(tinystories).toHaveLength(expected.tinystories.length);
      expect(tinystories.map((t) => tok.encode(t))).toEqual(expected.tinystories);
    });

    it("adds BOS and EOS only when asked; empty text has no dummy prefix", () => {
      const body = tok.encode("Hello world!", { bos: false });
      expect(tok.encode("Hello world!")).toEqual([1, ...body]);
      expect(tok.encode("Hello world!", { eos: true })).toEqual([1, ...body, 2]);
      expect(tok.encode("")).toEqual([1]);
      expect(tok.encode("", { bos: false, eos: true })).toEqual([2]);
    });

    it("stops at a NUL like run.c's C string", () => {
      expect(tok.encode("Hi\0there")).toEqual(tok.encode("Hi"));
      expect(tok.encode("\0there")).toEqual([1]);
    });

    it("decodes the fixture encodings back to the texts", () => {
      // Every fixture text round-trips: the dummy-prefix space goes away after BOS and byte fallback restores
      // characters the vocabulary lacks.
      for (const text of fixture.texts) {
        const ids = tok.encode(text).slice(1);
        expect(tok.decode(ids, 1)).toBe(text); // decode is the stream of pieces, as generation prints them
      }
    });

    it("strips the leading space only right after BOS", () => {
      const space = pieces.indexOf(" ");
      expect(tok.pieceBytes(1, space)).toEqual(new Uint8Array(0));
      expect(tok.pieceBytes(5, space)).toEqual(Uint8Array.of(0x20));
      expect(tok.decode([space, space], 1)).toBe(" ");
      expect(tok.decode([space, space])).toBe("  ");
    });

    it("renders <0xNN> pieces as their byte, <0x00> as nothing", () => {
      expect(tok.pieceBytes(0, 3 + 0x0a)).toEqual(Uint8Array.of(0x0a));
      expect(tok.pieceBytes(1, 3 + 0xff)).toEqual(Uint8Array.of(0xff));
      expect(tok.pieceBytes(0, 3)).toEqual(new Uint8Array(0));
    });

    it("rejects ids outside the vocabulary", () => {
      for (const id of [-1, size, 1.5, Number.NaN]) expect(() => tok.pieceBytes(0, id)).toThrow(DynactError);
    });

    it("streams a byte-fallback character whole with the token that completes it", () => {
      const ids = tok.encode("a\u{1f600}b").slice(1);
      const stream = new StreamDecoder(tok);
      const parts = ids.map((id, i) => stream.push(i === 0 ? 1 : ids[i - 1]!, id));
      expect(parts.join("") + stream.flush()).toBe("a\u{1f600}b");
      const first = ids.indexOf(3 + 0xf0); // the emoji's 4 UTF-8 bytes are byte-fallback tokens in both vocabularies
      expect(ids.slice(first, first + 4)).toEqual([0xf0, 0x9f, 0x98, 0x80].map((b) => b + 3));
      expect(parts.slice(first, first + 4)).toEqual(["", "", "", "\u{1f600}"]);
    });

    it("turns invalid bytes into U+FFFD, unfinished ones at the end too", () => {
      expect(tok.decode([3 + 0xff, 3 + 0x41])).toBe("\ufffdA");
      expect(tok.decode([3 + 0xf0, 3 + 0x9f])).toBe("\ufffd");
    });

    it("encodes like the line-by-line port of run.c (property)", () => {
      const usable = pieces.slice(3 + 256).filter((p) => !p.includes("\ufffd"));
      const runc = runcEncoder(tok);
      fc.assert(
        fc.property(textArb(usable), fc.boolean(), fc.boolean(), (text, bos, eos) => {
          expect(tok.encode(text, { bos, eos })).toEqual(runc(text, bos, eos));
        }),
        { numRuns: 300 },
      );
    });

    it("encodes 100 KB of TinyStories quickly and decodes it back", () => {
      const text = readFileSync(shared("data/tinystories_val.txt"), "utf8").slice(0, 100_000);
      const start = performance.now();
      const ids = tok.encode(text);
      expect(performance.now() - start).toBeLessThan(2000); // generous: the machine is shared
      expect(tok.decode(ids.slice(1), 1)).toBe(text);
    });
  });

  describe("fuzzed tokenizer.bin", () => {
    let original: Uint8Array;
    beforeAll(() => {
      original = readFileSync(shared("models/tok512.bin"));
    });

    /** Parses, and when that works, encodes and decodes: only FormatError may come out. */
    function survives(bytes: Uint8Array): void {
      try {
        const tok = parseLlama2cTokenizer(bytes, "fuzz.bin");
        tok.decode(tok.encode("Once upon a time, 😀!"));
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
      }
    }

    it("truncations", () => {
      fc.assert(
        fc.property(fc.nat(original.length), (length) => survives(original.subarray(0, length))),
        { numRuns: 2000 },
      );
    });

    it("byte flips", () => {
      const flip = fc.record({ at: fc.nat(original.length - 1), value: fc.nat(255) });
      fc.assert(
        fc.property(fc.array(flip, { minLength: 1, maxLength: 8 }), (flips) => {
          const bytes = Uint8Array.from(original);
          for (const { at, value } of flips) bytes[at] = value;
          survives(bytes);
        }),
        { numRuns: 2000 },
      );
    });

    it("flips in the header and the first entries, where lengths and scores live", () => {
      fc.assert(
        fc.property(fc.nat(63), fc.nat(255), fc.nat(original.length), (at, value, length) => {
          const bytes = Uint8Array.from(original.subarray(0, Math.max(length, 64)));
          bytes[at] = value;
          survives(bytes);
        }),
        { numRuns: 2000 },
      );
    });
  });
});

describe("llama2.c tokenizer on synthetic vocabularies", () => {
  const abc = (extra: readonly (readonly [string, number])[]) =>
    parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, [" ", -1], ["a", -1], ["b", -1], ["c", -1], ...extra]), "abc.bin");

  it("merges the highest-scoring pair first", () => {
    const tok = abc([["ab", -5], ["bc", -2]]);
    expect(tok.encode("abc", { bos: false }).slice(1)).toEqual([4, 8]); // "a" + "bc"
  });

  it("takes the leftmost pair on equal scores, as run.c's strict > does", () => {
    const tok = abc([["ab", -2], ["bc", -2]]);
    expect(tok.encode("abc", { bos: false }).slice(1)).toEqual([7, 6]); // "ab" + "c"
    const repeated = abc([["aa", -2]]);
    expect(repeated.encode("aaa", { bos: false }).slice(1)).toEqual([7, 4]); // "aa" + "a"
  });

  it("never merges pieces scoring -1e10 or less (run.c's initial best score)", () => {
    expect(abc([["ab", -1e10]]).encode("ab", { bos: false })).toEqual([3, 4, 5]);
    expect(abc([["ab", -9.9e9]]).encode("ab", { bos: false })).toEqual([3, 7]);
  });

  it("merges like the line-by-line port of run.c on random tie-heavy vocabularies (property)", () => {
    const piece = fc.string({ unit: fc.constantFrom("a", "b", "c", " "), minLength: 2, maxLength: 4 });
    const score = fc.constantFrom(0, -1, -2, -3, -1e10, -2e10, 5);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(piece, score), { maxLength: 30 }),
        fc.string({ unit: fc.constantFrom("a", "b", "c", " "), maxLength: 40 }),
        (extra, text) => {
          const tok = abc(extra);
          expect(tok.encode(text)).toEqual(runcEncoder(tok)(text, true, false));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("falls back to bytes for characters the vocabulary lacks", () => {
    const tok = parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, ...BYTE_PIECES, [" ", 0], ["é", 0]]), "bytes.bin");
    expect(tok.encode("éx", { bos: false })).toEqual([259, 260, 3 + 0x78]);
    expect(tok.encode("ü", { bos: false })).toEqual([259, 3 + 0xc3, 3 + 0xbc]);
    expect(tok.decode([3 + 0xc3, 3 + 0xbc])).toBe("ü");
  });

  it("reports a missing dummy-prefix piece or byte-fallback piece as FormatError", () => {
    const noSpace = parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, ["a", 0]]), "nospace.bin");
    expect(noSpace.encode("")).toEqual([1]);
    expect(() => noSpace.encode("a")).toThrow(/nospace\.bin: pieces: no " " piece/);
    expect(() => abc([]).encode("é")).toThrow(FormatError);
  });

  it("treats pieces as C strings: bytes after a NUL are invisible", () => {
    const tok = parseLlama2cTokenizer(
      tokenizerBin(8, [...SPECIALS, [" ", 0], ["a", 0], [Uint8Array.of(0x61, 0x62, 0, 0x7a), 0], ["b", 0]]),
      "nul.bin",
    );
    // To run.c "ab\0z" is "ab", so "a" + "b" merge into it.
    expect(tok.encode("ab", { bos: false })).toEqual([3, 5]);
    expect(tok.pieceBytes(0, 5)).toEqual(Uint8Array.of(0x61, 0x62));
  });

  it('reads byte pieces the way glibc\'s sscanf("<0x%02hhX>") does', () => {
    // Results checked against glibc 2.36.
    // The rendered bytes, or "piece" when sscanf does not match; byte 0 renders as nothing (a C string).
    const cases: [string, number[] | "piece"][] = [
      ["<0x41>", [0x41]],
      ["<0xab>", [0xab]],
      ["<0xA", [0x0a]],
      ["<0x4F1", [0x4f]],
      ["<0x  4F>", [0x4f]],
      ["<0x-1>", [0xff]],
      ["<0x+F>", [0x0f]],
      ["<0x0x41>", []],
      ["<0x00>", []],
      ["<0x>", "piece"],
      ["<0x-", "piece"],
      ["<0xg1>", "piece"],
      ["<0X41>", "piece"],
    ];
    const tok = parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, ...cases.map(([p]) => [p, 0] as const)]), "scan.bin");
    cases.forEach(([piece, bytes], i) => {
      const expected = bytes === "piece" ? new TextEncoder().encode(piece) : Uint8Array.from(bytes);
      expect(tok.pieceBytes(0, 3 + i), piece).toEqual(expected);
    });
    // After BOS the space goes first, so " <0x41>" is a byte piece too.
    const spaced = parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, [" <0x41>", 0]]), "spaced.bin");
    expect(spaced.pieceBytes(1, 3)).toEqual(Uint8Array.of(0x41));
    expect(spaced.pieceBytes(0, 3)).toEqual(new TextEncoder().encode(" <0x41>"));
  });

  it("keeps a generated U+FEFF", () => {
    const tok = parseLlama2cTokenizer(tokenizerBin(8, [...SPECIALS, ["\ufeff", 0], ["x", 0]]), "bom.bin");
    expect(tok.decode([3, 4])).toBe("\ufeffx");
  });

  describe("rejects malformed files with FormatError", () => {
    const valid = tokenizerBin(8, [...SPECIALS, [" ", 0]]);
    const withInt32 = (at: number, value: number) => {
      const bytes = Uint8Array.from(valid);
      new DataView(bytes.buffer).setInt32(at, value, true);
      return bytes;
    };
    const withFloat32 = (at: number, value: number) => {
      const bytes = Uint8Array.from(valid);
      new DataView(bytes.buffer).setFloat32(at, value, true);
      return bytes;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ["an empty file", new Uint8Array(0), /max_token_length: the file has 0 bytes/],
      ["a short header", Uint8Array.of(8, 0, 0), /max_token_length/],
      ["max_token_length 0", withInt32(0, 0), /max_token_length: 0 is not positive/],
      ["negative max_token_length", withInt32(0, -5), /max_token_length: -5 is not positive/],
      ["no pieces", tokenizerBin(8, []), /pieces: 0 pieces/],
      ["fewer pieces than the specials", tokenizerBin(8, SPECIALS.slice(0, 2)), /pieces: 2 pieces/],
      ["a truncated entry header", valid.subarray(0, valid.length - 3 - 5), /piece 3: truncated/],
      ["a truncated piece", valid.subarray(0, valid.length - 1), /piece 3 length: 1 bytes, but only 0 are left/],
      ["a negative length", withInt32(4 + 4, -1), /piece 0 length: -1 is outside/],
      ["a huge length", withInt32(4 + 4, 0x7fffffff), /piece 0 length: 2147483647 is outside/],
      ["a piece longer than max_token_length", tokenizerBin(4, SPECIALS), /piece 0 length: 5 is outside 0\.\.max_token_length/],
      ["a NaN score", withFloat32(4, Number.NaN), /piece 0 score: NaN is not finite/],
      ["an infinite score", withFloat32(4, -Infinity), /piece 0 score: -Infinity is not finite/],
    ];
    it.each(cases)("%s", (_, bytes, message) => {
      expect(() => parseLlama2cTokenizer(bytes, "bad.bin")).toThrow(FormatError);
      expect(() => parseLlama2cTokenizer(bytes, "bad.bin")).toThrow(message);
    });

    it("more pieces than the model's vocabulary: refused at the first extra one, not after reading them all", () => {
      // 2^20 empty entries of 8 bytes after the 4 pieces a model of 4 tokens has: each became a piece (a Uint8Array,
      // a key, a map entry) before loadTokenizer compared the count, 25-odd heap bytes per file byte — a 100 MB file
      // exhausted a 256 MB heap.
      const extra = 2 ** 20;
      const bytes = new Uint8Array(valid.length + 8 * extra);
      bytes.set(valid);
      expect(() => parseLlama2cTokenizer(bytes, "big.bin", 4)).toThrow(
        new FormatError("big.bin", "piece 4", "the file holds more pieces than the model's vocabulary of 4: wrong tokenizer for this model"));
      expect(parseLlama2cTokenizer(valid, "exact.bin", 4).vocabSize).toBe(4);
      expect(parseLlama2cTokenizer(valid, "more.bin", 5).vocabSize).toBe(4); // fewer: loadTokenizer names both files
      // Stray bytes after the model's last piece are no further piece: the file is truncated, whichever tokenizer it is.
      expect(() => parseLlama2cTokenizer(Uint8Array.from([...valid, 0, 0, 0]), "stray.bin", 4)).toThrow(
        new FormatError("stray.bin", "piece 4", "truncated: 3 bytes left, its score and length need 8"));
    });

    it("random bytes (property)", () => {
      // Half of them behind a plausible header, so that entries get parsed too.
      const header = Uint8Array.of(8, 0, 0, 0);
      const bytes = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 200 }).map((tail) => Uint8Array.from([...header, ...tail])),
      );
      // Half of them read for a model's vocabulary, as loadTokenizer reads them: never more pieces than it has.
      fc.assert(
        fc.property(bytes, fc.option(fc.integer({ min: 1, max: 30 })), (random, vocab) => {
          try {
            const tok = parseLlama2cTokenizer(random, "random.bin", vocab ?? undefined);
            if (vocab !== null) expect(tok.vocabSize).toBeLessThanOrEqual(vocab);
          } catch (err) {
            if (!(err instanceof FormatError)) throw err;
          }
        }),
        { numRuns: 2000 },
      );
    });
  });

  it("names a missing file without an ENOENT stack", () => {
    const missing = path.join(FIXTURES, "no-such-tokenizer.bin");
    expect(() => readLlama2cTokenizer(missing)).toThrow(DynactError);
    expect(() => readLlama2cTokenizer(missing)).toThrow(`tokenizer file ${missing}: not found`);
  });
});
