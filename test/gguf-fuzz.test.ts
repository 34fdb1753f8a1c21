// Fuzzing the GGUF reader: truncations, flipped bytes and targeted lies in every header field (absurd counts,
// lengths and dims, offsets past the end, misaligned or overlapping data, unknown types, bad UTF-8). Every case
// must end in a FormatError that names the file and a field, or in a checkpoint whose every tensor lies inside
// the file — never another exception, a hang or a huge allocation. Headers are parsed from memory, so each case
// takes well under a millisecond.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { canonicalShape, canonicalShapes, entryBytes } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { ggufCheckpoint, parseGgufHeader, writeGguf, type GgufFile } from "../models/formats/gguf";
import { ggufTokenizer } from "../models/formats/gguf-tokenizer";
import { ENGINE_LIMIT, memoryLimitMessage, memoryNeed } from "../models/memory-fit";
import { haveAssets, shared } from "./assets";

const NAME = "fuzz.gguf";
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-ggufz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Parse, then build the checkpoint and the tokenizer: each step must succeed consistently or be a FormatError. */
function check(head: Uint8Array, fileSize: number): void {
  let g: GgufFile;
  try {
    g = parseGgufHeader(head, fileSize, NAME);
  } catch (e) {
    return expectFormatError(e);
  }
  let end = g.dataOffset;
  for (const t of g.tensors) {
    expect(t.offset).toBeGreaterThanOrEqual(end); // sorted, inside the data, no overlaps
    end = t.offset + t.bytes;
  }
  expect(end).toBeLessThanOrEqual(fileSize);
  try {
    const c = ggufCheckpoint(g, NAME);
    for (const e of c.tensors.values()) {
      expect(e.fileOffset + entryBytes(e)).toBeLessThanOrEqual(fileSize);
      expect(e.shape).toEqual(canonicalShape(c.config, e.name));
    }
    // What loadModel does before it allocates: size the model from the header, and word the refusal.
    if (memoryNeed(c, c.config).total > ENGINE_LIMIT) expect(memoryLimitMessage(c, c.config)).toContain(NAME);
  } catch (e) {
    expectFormatError(e);
  }
  try {
    ggufTokenizer(g.metadata, NAME);
  } catch (e) {
    expectFormatError(e);
  }
}

function expectFormatError(e: unknown): void {
  if (!(e instanceof FormatError)) throw e; // shows the unexpected error itself
  expect(e.file).toBe(NAME);
  expect(e.field.length).toBeGreaterThan(0);
  expect(e.message.startsWith(`${NAME}: `)).toBe(true);
}

interface Field {
  at: number;
  kind: "u32" | "u64" | "text";
  length?: number;
}

// A minimal walk over a valid header that records where each field is (test-only: the reader under test never
// sees these offsets). Only the first few items of an array are recorded.
function locateFields(h: Uint8Array): { fields: Field[]; hyper: Field[]; tensorInfos: number } {
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const sizes = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
  const fields: Field[] = [{ at: 8, kind: "u64" }, { at: 16, kind: "u64" }];
  let p = 24;
  const u64 = (record = true): number => {
    if (record) fields.push({ at: p, kind: "u64" });
    p += 8;
    return Number(dv.getBigUint64(p - 8, true));
  };
  const u32 = (record = true): number => {
    if (record) fields.push({ at: p, kind: "u32" });
    p += 4;
    return dv.getUint32(p - 4, true);
  };
  const text = (record: boolean): string => {
    const n = u64(record);
    if (record) fields.push({ at: p, kind: "text", length: n });
    p += n;
    return new TextDecoder().decode(h.subarray(p - n, p));
  };
  const hyper: Field[] = []; // the llama.* integers: the config every size is computed from
  const value = (type: number, record: boolean): void => {
    if (type === 8) return void text(record);
    if (type !== 9) return void (p += sizes[type]!);
    const item = u32(record);
    const n = u64(record);
    for (let i = 0; i < n; i++) value(item, record && i < 3);
  };
  const nTensors = Number(dv.getBigUint64(8, true));
  const nKv = Number(dv.getBigUint64(16, true));
  for (let i = 0; i < nKv; i++) {
    const key = text(true);
    const type = u32();
    if (key.startsWith("llama.") && [4, 5, 10, 11].includes(type)) hyper.push({ at: p, kind: type >= 10 ? "u64" : "u32" });
    value(type, true);
  }
  const tensorInfos = p;
  for (let i = 0; i < nTensors; i++) {
    text(true);
    const nDims = u32();
    for (let d = 0; d < nDims; d++) u64();
    u32();
    u64();
  }
  return { fields, hyper, tensorInfos };
}

const U64_VALUES = [0n, 1n, 2n, 3n, 31n, 32n, 33n, 64n, 255n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 53n + 1n,
  2n ** 60n, 2n ** 63n, 2n ** 64n - 1n];
const U32_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 24, 28, 30, 31, 0x7fffffff, 0xffffffff];
const BAD_UTF8 = [0x80, 0xbf, 0xc0, 0xc1, 0xe0, 0xed, 0xf5, 0xff];

type Mutation =
  | { kind: "field"; field: number; v64: bigint; v32: number; delta: number }
  | { kind: "utf8"; field: number; at: number; byte: number }
  | { kind: "copy"; from: number; to: number };

/** Lists of 1 to 3 mutations of a header of `fileSize` bytes. */
function mutations(fileSize: number): fc.Arbitrary<Mutation[]> {
  const u64 = fc.oneof(fc.constantFrom(...U64_VALUES, BigInt(fileSize), BigInt(fileSize - 1)), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
  const u32 = fc.oneof(fc.constantFrom(...U32_VALUES), fc.nat({ max: 0xffffffff }));
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("field" as const), field: fc.nat(), v64: u64, v32: u32, delta: fc.integer({ min: -40, max: 40 }) }),
    fc.record({ kind: fc.constant("utf8" as const), field: fc.nat(), at: fc.nat(), byte: fc.constantFrom(...BAD_UTF8) }),
    fc.record({ kind: fc.constant("copy" as const), from: fc.nat(), to: fc.nat() }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 3 });
}

function mutate(h: Uint8Array, fields: Field[], ms: Mutation[]): Uint8Array {
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const u64s = fields.filter((f) => f.kind === "u64");
  for (const m of ms) {
    if (m.kind === "copy") {
      // One u64 field's bytes into another: equal offsets (overlapping data), lengths, dims, ….
      h.copyWithin(u64s[m.to % u64s.length]!.at, u64s[m.from % u64s.length]!.at, u64s[m.from % u64s.length]!.at + 8);
      continue;
    }
    const f = fields[m.field % fields.length]!;
    if (m.kind === "utf8") {
      if (f.kind === "text" && f.length! > 0) h[f.at + (m.at % f.length!)] = m.byte;
    } else if (f.kind === "u64") {
      // Half the time an absurd or random value, half a small shift of the real one (misaligned offsets, off-by-ones).
      const shifted = dv.getBigUint64(f.at, true) + BigInt(m.delta);
      dv.setBigUint64(f.at, m.delta % 2 === 0 ? m.v64 : shifted < 0n ? 0n : shifted, true);
    } else if (f.kind === "u32") {
      dv.setUint32(f.at, m.v32, true);
    }
  }
  return h;
}

// Hyperparameters that pass validateConfig (at most 2^24) yet describe far more than the file holds (most lies), small
// ones, ones validateConfig refuses, and any.
const hyperValue = fc.oneof(
  { arbitrary: fc.constantFrom(1 << 16, 1 << 20, (1 << 24) - 1, 1 << 24), weight: 3 },
  { arbitrary: fc.constantFrom(0, 1, 2, 3, 4, 8, 16, 64, (1 << 24) + 1, 2 ** 31, 2 ** 32 - 1), weight: 1 },
  { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 },
);

function suite(label: string, file: () => Uint8Array, runs: { truncate: number; flips: number; fields: number; hyper: number }) {
  describe(label, () => {
    const bytes = new Uint8Array(file()); // not a Buffer: Buffer#slice would share memory with the original
    const headerEnd = parseGgufHeader(bytes, bytes.length, NAME).dataOffset;
    const header = bytes.subarray(0, headerEnd);
    const { fields, hyper, tensorInfos } = locateFields(header);

    test("the unmutated header is accepted", () => check(header, bytes.length));

    test(`${runs.truncate} truncations (of the header, and of the file size)`, () => {
      fc.assert(fc.property(fc.nat({ max: headerEnd }), fc.boolean(), fc.nat({ max: bytes.length }), (cut, fullSize, size) => {
        check(header.subarray(0, cut), fullSize ? bytes.length : Math.max(cut, size));
      }), { numRuns: runs.truncate });
    });

    test(`${runs.flips} random byte flips (biased to the tensor infos), with random file sizes`, () => {
      const position = fc.oneof(fc.nat({ max: headerEnd - 1 }), fc.integer({ min: tensorInfos, max: headerEnd - 1 }), fc.nat({ max: 63 }));
      fc.assert(fc.property(
        fc.array(fc.record({ at: position, byte: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 6 }),
        fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: -4096, max: 64 }), weight: 1 }),
        (flips, sizeDelta) => {
          const h = header.slice();
          for (const f of flips) h[f.at] = f.byte;
          check(h, Math.max(0, bytes.length + sizeDelta));
        },
      ), { numRuns: runs.flips });
    });

    test(`${runs.fields} targeted lies in header fields (counts, lengths, dims, types, offsets, UTF-8)`, () => {
      fc.assert(fc.property(mutations(bytes.length), (ms) => check(mutate(header.slice(), fields, ms), bytes.length)),
        { numRuns: runs.fields });
    });

    test(`${runs.hyper} lies in the llama.* hyperparameters (block count, context length, dims, heads)`, () => {
      // Nothing in the file bounds them until a tensor is looked up: 2^24 blocks once built 9 × 2^24 names first.
      fc.assert(fc.property(fc.array(fc.record({ field: fc.nat(), value: hyperValue }), { minLength: 1, maxLength: 2 }), (lies) => {
        const h = header.slice();
        const dv = new DataView(h.buffer);
        for (const { field, value: v } of lies) {
          const f = hyper[field % hyper.length]!;
          if (f.kind === "u64") dv.setBigUint64(f.at, BigInt(v), true);
          else dv.setUint32(f.at, v, true);
        }
        check(h, bytes.length);
      }), { numRuns: runs.hyper });
    });
  });
}

// A tiny model with Q8_0 weights (W_down falls back to F16: rows of 48) and no tokenizer: its header is mostly
// tensor infos, so mutations land there.
const tiny: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 16,
  ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
suite("tiny Q8_0 model", () => {
  const file = path.join(dir, "tiny.gguf");
  const shapes = canonicalShapes(tiny);
  writeGguf(file, tiny, (n) => Float32Array.from({ length: shapes.get(n)!.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)),
    { dtype: "q8_0", tied: false });
  return readFileSync(file);
}, { truncate: 1500, flips: 3000, fields: 4000, hyper: 400 });

describe.runIf(haveAssets("models/stories260K.gguf"))("stories260K.gguf (with its tokenizer)", () => {
  suite("published file", () => readFileSync(shared("models/stories260K.gguf")), { truncate: 1000, flips: 2000, fields: 3000, hyper: 300 });
});

test("hand-made lies name their field", () => {
  const file = path.join(dir, "hand.gguf");
  const shapes = canonicalShapes(tiny);
  writeGguf(file, tiny, (n) => new Float32Array(shapes.get(n)!.reduce((a, b) => a * b, 1)), { dtype: "f32", tied: true });
  const bytes = readFileSync(file);
  const fieldOf = (mutate: (h: Buffer) => void, size = bytes.length): string => {
    const h = Buffer.from(bytes);
    mutate(h);
    try {
      ggufCheckpoint(parseGgufHeader(h, size, NAME), NAME);
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      return (e as FormatError).field;
    }
    return "accepted";
  };
  const at = (s: string) => bytes.indexOf(Buffer.from(s));
  expect(fieldOf((h) => h.write("GGUX", 0))).toBe("magic");
  expect(fieldOf((h) => h.writeUInt32LE(1, 4))).toBe("version");
  expect(fieldOf((h) => h.writeBigUInt64LE(2n ** 60n, 8))).toBe("n_tensors");
  expect(fieldOf((h) => h.writeBigUInt64LE(2n ** 40n, 16))).toBe("n_kv");
  expect(fieldOf((h) => h.writeBigUInt64LE(2n ** 50n, 24))).toMatch(/^key 0/); // the first key's length
  expect(fieldOf((h) => (h[at("general.architecture") + 3] = 0xff))).toMatch(/^key 0$/);
  expect(fieldOf((h) => h.writeUInt32LE(13, at("general.architecture") + 20))).toBe("general.architecture");
  const embd = at("token_embd.weight") + "token_embd.weight".length; // n_dims, dims, type, offset follow
  expect(fieldOf((h) => h.writeBigUInt64LE(2n ** 60n, embd + 4))).toBe("token_embd.weight dims");
  expect(fieldOf((h) => h.writeUInt32LE(12, embd + 20))).toBe("token_embd.weight type");
  expect(fieldOf((h) => h.writeBigUInt64LE(4n, embd + 24))).toBe("token_embd.weight offset"); // misaligned
  expect(fieldOf((h) => h.writeBigUInt64LE(2n ** 40n, embd + 24))).toBe("token_embd.weight offset"); // past the end
  expect(fieldOf(() => {}, bytes.length - 1)).toMatch(/offset$/); // the file is one byte short
  expect(fieldOf((h) => h.write("k", at("blk.0.attn_q.weight") + 11))).toBe("blk.0.attn_k.weight"); // duplicated
  expect(fieldOf((h) => h.write("llama.block_count", at("general.alignment")))).toBe("llama.block_count"); // duplicated
  expect(fieldOf((h) => h.writeUInt32LE(48, at("general.alignment") + 21))).toBe("general.alignment"); // not a power of 2
  // 2^24 blocks (the most validateConfig allows): the first missing tensor is named at once, with no list of 9 × 2^24
  // names built first (that exhausted the heap in a CI run when the fuzzer flipped this byte).
  const blocks = at("llama.block_count") + "llama.block_count".length + 4;
  expect(bytes.readUInt32LE(blocks)).toBe(tiny.nLayers);
  expect(fieldOf((h) => h.writeUInt32LE(2 ** 24, blocks))).toBe("blk.2.attn_norm.weight");
});
