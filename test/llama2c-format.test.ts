// llama2.c checkpoints: v0 and v1 layouts agree, tied and untied classifiers load, and every malformed file is
// a FormatError naming the field — never a crash, a hang or garbage.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { FormatError } from "../models/formats/format-error";
import { parseLlama2cHeader, readLlama2cCheckpoint, ROPE_CHUNK_VALUES, writeLlama2cCheckpoint } from "../models/formats/llama2c";
import { canonicalShapes } from "../models/checkpoint";
import type { LlamaConfig } from "../models/config";
import { buildModel } from "../models/load";
import { readTensorData } from "../models/weights";
import { haveAssets, shared } from "./assets";
import { lastLogits } from "./model-harness";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-l2c-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const logitsOf = (file: string, ids: number[]) => lastLogits(buildModel(readLlama2cCheckpoint(file)), ids);

describe.runIf(haveAssets("models/stories260K.bin"))("stories260K.bin", () => {
  const src = shared("models/stories260K.bin");
  const ckpt = readLlama2cCheckpoint(src);
  const ids = [1, 403, 407, 261, 378];

  test("header as documented", () => {
    expect(ckpt.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
    expect(ckpt.tensors.has("output")).toBe(false); // positive vocab_size: tied classifier
    expect(ckpt.tensors.size).toBe(3 + 9 * 5 - 1);
  });

  test("v0 → v1 (tied) and v0 (untied) rewrites give identical logits", () => {
    const base = logitsOf(src, ids);
    const read = (name: string) => readTensorData(ckpt, name === "output" ? "token_embd" : name);
    const v1 = path.join(dir, "v1.bin");
    writeLlama2cCheckpoint(v1, ckpt.config, read, { version: 1, tied: true });
    expect(readLlama2cCheckpoint(v1).tensors.has("output")).toBe(false);
    expect(logitsOf(v1, ids)).toEqual(base);
    const untied = path.join(dir, "v0-untied.bin");
    writeLlama2cCheckpoint(untied, ckpt.config, read, { version: 0, tied: false });
    expect(readLlama2cCheckpoint(untied).tensors.has("output")).toBe(true);
    expect(logitsOf(untied, ids)).toEqual(base);
    const v1untied = path.join(dir, "v1-untied.bin");
    writeLlama2cCheckpoint(v1untied, ckpt.config, read, { version: 1, tied: false });
    expect(logitsOf(v1untied, ids)).toEqual(base);
  });

  test("the v0 rewrite is byte-identical to the original file", () => {
    const out = path.join(dir, "v0.bin");
    writeLlama2cCheckpoint(out, ckpt.config, (n) => readTensorData(ckpt, n), { version: 0, tied: true });
    // The original's RoPE tables were computed in PyTorch; ours in f64 → f32. They are unused, so compare the rest.
    const a = readFileSync(src);
    const b = readFileSync(out);
    expect(b.length).toBe(a.length);
    const ropeStart = a.length - 2 * 512 * 4 * 4;
    expect(b.subarray(0, ropeStart).equals(a.subarray(0, ropeStart))).toBe(true);
  });

  const original = readFileSync(src);
  const header = (mutate: (dv: DataView) => void): Uint8Array => {
    const h = new Uint8Array(original.subarray(0, 256));
    mutate(new DataView(h.buffer));
    return h;
  };
  const cases: [string, (dv: DataView) => void, string][] = [
    ["zero dim", (dv) => dv.setInt32(0, 0, true), "dim"],
    ["negative layers", (dv) => dv.setInt32(8, -5, true), "nLayers"],
    ["dim not divisible by heads", (dv) => dv.setInt32(12, 7, true), "nHeads"],
    ["kv heads not dividing heads", (dv) => dv.setInt32(16, 3, true), "nKvHeads"],
    ["absurd vocab", (dv) => dv.setInt32(20, 2 ** 30, true), "vocabSize"],
    ["size disagrees with the file", (dv) => dv.setInt32(24, 1024, true), "size"],
    ["untied claim without the classifier", (dv) => dv.setInt32(20, -512, true), "size"],
  ];
  test.each(cases)("%s → FormatError", (_, mutate, field) => {
    const err = (() => {
      try {
        parseLlama2cHeader(header(mutate), original.length, "x.bin");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).field).toBe(field);
    expect((err as FormatError).message).toMatch(/^x\.bin: /);
  });

  test("truncated and oversized files → FormatError", () => {
    for (const len of [0, 10, 27, 28, 1000, original.length - 1]) {
      expect(() => parseLlama2cHeader(original.subarray(0, Math.min(len, 256)), len, "t.bin")).toThrow(FormatError);
    }
    expect(() => parseLlama2cHeader(original.subarray(0, 256), original.length + 4, "t.bin")).toThrow(FormatError);
    const truncated = path.join(dir, "truncated.bin");
    writeFileSync(truncated, original.subarray(0, original.length - 100));
    expect(() => readLlama2cCheckpoint(truncated)).toThrow(/size/);
  });

  test("unsupported v1 versions name the version", () => {
    const h = new Uint8Array(256);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x616b3432, true);
    dv.setInt32(4, 2, true);
    expect(() => parseLlama2cHeader(h, 1 << 20, "q.bin")).toThrow(/version 2/);
  });

  test("fuzz: mutated headers end in a FormatError or a consistent checkpoint", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(63), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: -64, max: 64 }),
        (flips, sizeDelta) => {
          const h = new Uint8Array(original.subarray(0, 256));
          for (const f of flips) h[f.at] = f.value;
          const size = Math.max(0, original.length + sizeDelta);
          try {
            const c = parseLlama2cHeader(h, size, "f.bin");
            // Accepted: then every tensor must lie inside the file.
            for (const e of c.tensors.values()) {
              expect(e.fileOffset + e.shape.reduce((a, b) => a * b, 1) * 4).toBeLessThanOrEqual(size);
            }
          } catch (e) {
            expect(e).toBeInstanceOf(FormatError);
          }
        },
      ),
      { numRuns: 10_000 },
    );
  });
});

test("a missing file is a FormatError naming the file", () => {
  expect(() => readLlama2cCheckpoint(path.join(dir, "nope.bin"))).toThrow(/nope\.bin: file: no such file/);
});

test("closed-form payload size equals the laid-out tensors", async () => {
  const { payloadBytes } = await import("../models/formats/llama2c");
  const { canonicalShapes } = await import("../models/checkpoint");
  fc.assert(
    fc.property(
      fc.record({ heads: fc.integer({ min: 1, max: 4 }), group: fc.integer({ min: 1, max: 3 }), half: fc.integer({ min: 1, max: 4 }),
        hiddenDim: fc.integer({ min: 1, max: 40 }), nLayers: fc.integer({ min: 1, max: 4 }), vocabSize: fc.integer({ min: 1, max: 50 }),
        seqLen: fc.integer({ min: 1, max: 20 }), shared: fc.boolean(), version: fc.constantFrom(0 as const, 1 as const) }),
      (r) => {
        const nHeads = r.heads * r.group;
        const config = { dim: nHeads * 2 * r.half, hiddenDim: r.hiddenDim, nLayers: r.nLayers, nHeads, nKvHeads: r.heads,
          vocabSize: r.vocabSize, seqLen: r.seqLen, ropeTheta: 10000, normEps: 1e-5, activation: "silu" as const };
        const file = path.join(dir, "p.bin");
        const zeros = (name: string) => new Float32Array(canonicalShapes(config).get(name)!.reduce((a, b) => a * b, 1));
        writeLlama2cCheckpoint(file, config, zeros, { version: r.version, tied: r.shared });
        const c = readLlama2cCheckpoint(file);
        expect(c.config).toMatchObject(config);
        expect(readFileSync(file).length).toBe((r.version ? 256 : 28) + payloadBytes(config, r.shared, r.version));
      },
    ),
    { numRuns: 100 },
  );
});

describe("v0's RoPE tables grow with the context, the writer's memory does not", () => {
  const small = { dim: 8, hiddenDim: 8, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 8, ropeTheta: 10000, normEps: 1e-5, activation: "silu" } as const;
  const zeros = (c: LlamaConfig) => (name: string) => new Float32Array(canonicalShapes(c).get(name)!.reduce((a, b) => a * b, 1));

  test("tables of several chunks hold cos/sin(pos / θ^(2j/head_size)) for every position", () => {
    const config: LlamaConfig = { ...small, seqLen: Math.ceil((2.5 * ROPE_CHUNK_VALUES) / 4) };
    const file = path.join(dir, "long-rope.bin");
    writeLlama2cCheckpoint(file, config, zeros(config), { version: 0, tied: true });
    const bytes = readFileSync(file);
    const values = config.seqLen * 4; // head size 8: 4 frequencies per position
    const tables = new Float32Array(bytes.buffer.slice(bytes.length - 8 * values));
    for (const pos of [0, 1, ROPE_CHUNK_VALUES / 4 - 1, ROPE_CHUNK_VALUES / 4, 2 * ROPE_CHUNK_VALUES / 4 + 3, config.seqLen - 1]) {
      for (let j = 0; j < 4; j++) {
        const angle = pos / Math.pow(10000, (2 * j) / 8);
        expect(tables[pos * 4 + j]).toBe(Math.fround(Math.cos(angle)));
        expect(tables[values + pos * 4 + j]).toBe(Math.fround(Math.sin(angle)));
      }
    }
  });

  test("a context run.c could not skip (seq_len × head_size beyond a C int) is refused before the file is created", () => {
    // A GGUF of 280 KiB (head size 128) claiming llama.context_length 2^24: convert --to llama2c built one array of
    // 2^31 floats for the tables (8 GiB) and ran for minutes, or died allocating it.
    const config: LlamaConfig = { ...small, dim: 128, seqLen: 2 ** 24 };
    const file = path.join(dir, "huge-context.bin");
    expect(() => writeLlama2cCheckpoint(file, config, zeros(config), { version: 0, tied: true })).toThrow(
      new FormatError(file, "seq_len", "16777216 positions × head size 128 overflow the C int run.c skips the legacy RoPE tables " +
        "with (at most 2^31 - 1 values): no llama2.c file can hold this context"));
    expect(existsSync(file)).toBe(false); // refused before the file was opened, let alone a table computed
    // v1 has no tables: the same context is written, and reads back.
    writeLlama2cCheckpoint(file, config, zeros(config), { version: 1, tied: true });
    expect(readLlama2cCheckpoint(file).config.seqLen).toBe(2 ** 24);
  });
});
