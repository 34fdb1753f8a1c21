// Fuzzing the safetensors reader and config.json: truncations, flipped bytes, lying header lengths, and JSON that
// is well-formed but wrong (absurd shapes, offsets past the end or overlapping, unknown dtypes, duplicated names,
// bad UTF-8). Every case ends in a FormatError naming the file and a field, or in a checkpoint whose every
// tensor lies inside its file. Headers are parsed from memory.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { canonicalShape, canonicalShapes, entryBytes } from "../models/checkpoint";
import { validateConfig, type LlamaConfig } from "../models/config";
import { FormatError } from "../models/formats/format-error";
import { hfConfigJson, parseHfConfig } from "../models/formats/hf-config";
import { parseSafetensorsHeader, safetensorsCheckpoint, writeSafetensors } from "../models/formats/safetensors";
import { ENGINE_LIMIT, memoryLimitMessage, memoryNeed } from "../models/memory-fit";

const NAME = "fuzz.safetensors";
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-stz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 16,
  ropeTheta: 10000, normEps: 1e-5, activation: "silu" };
const shapes = canonicalShapes(config);
writeSafetensors(dir, config, (n) => new Float32Array(shapes.get(n)!.reduce((a, b) => a * b, 1)), { dtype: "f16", tied: false });
const file = new Uint8Array(readFileSync(path.join(dir, "model.safetensors"))); // a copy, not a pooled Buffer
const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
const head = file.subarray(0, 8 + headerLength);
const headerJson: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> =
  JSON.parse(new TextDecoder().decode(head.subarray(8)));
const tensorNames = Object.keys(headerJson).filter((k) => k !== "__metadata__");

/** Parse and map: a FormatError naming NAME and a field, or a checkpoint whose every tensor is inside the file. */
function check(bytes: Uint8Array, fileSize: number): void {
  try {
    const tensors = parseSafetensorsHeader(bytes, fileSize, NAME);
    for (const t of tensors.values()) expect(t.offset + t.bytes).toBeLessThanOrEqual(fileSize);
    const c = safetensorsCheckpoint(dir, config, false, [{ file: NAME, tensors }]);
    for (const e of c.tensors.values()) {
      expect(e.fileOffset + entryBytes(e)).toBeLessThanOrEqual(fileSize);
      expect(e.shape).toEqual(shapes.get(e.name));
    }
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    expect([NAME, dir]).toContain(e.file);
    expect(e.field.length).toBeGreaterThan(0);
  }
}

/** A file whose header is `json` (a string, so it can hold anything) and whose data is the original's. */
function withHeader(json: string, lengthDelta = 0): { bytes: Uint8Array; size: number } {
  const text = new TextEncoder().encode(json);
  const bytes = new Uint8Array(8 + text.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(Math.max(0, text.length + lengthDelta)), true);
  bytes.set(text, 8);
  return { bytes, size: bytes.length + (file.length - head.length) };
}

test("the unmutated file is accepted", () => {
  const tensors = parseSafetensorsHeader(head, file.length, NAME);
  expect(safetensorsCheckpoint(dir, config, false, [{ file: NAME, tensors }]).tensors.size).toBe(shapes.size);
});

test("2000 truncations of the header and of the file", () => {
  fc.assert(fc.property(fc.nat({ max: head.length }), fc.nat({ max: file.length }), fc.boolean(), (cut, size, fullSize) => {
    check(head.subarray(0, cut), fullSize ? file.length : Math.max(cut, size));
  }), { numRuns: 2000 });
});

test("3000 random byte flips (header length and JSON text) with random file sizes", () => {
  const position = fc.oneof(fc.nat({ max: 15 }), fc.nat({ max: head.length - 1 }));
  fc.assert(fc.property(
    fc.array(fc.record({ at: position, byte: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 6 }),
    fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: -5000, max: 64 }), weight: 1 }),
    (flips, sizeDelta) => {
      const h = head.slice();
      for (const f of flips) h[f.at] = f.byte;
      check(h, Math.max(0, file.length + sizeDelta));
    },
  ), { numRuns: 3000 });
});

const NUMBERS = [0, 1, 2, 3, 31, 32, 64, 1023, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1e300, -1, -0, 0.5, NaN, Infinity];
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...NUMBERS, null, true, "", "F32", "F16", "BF16", "F64", "I8", "U8", "BOOL", "F8_E4M3", "constructor", "__proto__", [], {}),
  fc.array(fc.constantFrom(...NUMBERS), { maxLength: 5 }),
  fc.string({ maxLength: 8 }),
);

test("5000 well-formed headers that lie (dtypes, shapes, offsets, names, lengths)", () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), name: fc.nat(), key: fc.constantFrom("dtype", "shape", "data_offsets"), value: anyValue }),
    fc.record({ kind: fc.constant("offsets" as const), name: fc.nat(), begin: fc.integer({ min: -8, max: 70000 }), span: fc.integer({ min: -4, max: 70000 }) }),
    fc.record({ kind: fc.constant("shape" as const), name: fc.nat(), shape: fc.array(fc.constantFrom(...NUMBERS), { maxLength: 4 }) }),
    fc.record({ kind: fc.constant("copyOffsets" as const), name: fc.nat(), from: fc.nat() }),
    fc.record({ kind: fc.constant("delete" as const), name: fc.nat() }),
    fc.record({ kind: fc.constant("rename" as const), name: fc.nat(), to: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom(...tensorNames, "__proto__", "model.layers.9.mlp.up_proj.weight", "model.layers.01.mlp.up_proj.weight")) }),
    fc.record({ kind: fc.constant("badUtf8" as const), name: fc.nat(), byte: fc.constantFrom(0x80, 0xc0, 0xed, 0xff) }),
  );
  const lengthDelta = fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 1 });
  fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), lengthDelta, (ms, delta) => {
    const h: Record<string, unknown> = structuredClone(headerJson);
    let badByte = -1;
    let badName = "";
    for (const m of ms) {
      const name = tensorNames[m.name % tensorNames.length]!;
      const t = h[name] as Record<string, unknown> | undefined;
      if (!t) continue;
      if (m.kind === "set") t[m.key] = m.value;
      else if (m.kind === "offsets") t.data_offsets = [m.begin, m.begin + m.span];
      else if (m.kind === "shape") t.shape = m.shape;
      else if (m.kind === "copyOffsets") t.data_offsets = (h[tensorNames[m.from % tensorNames.length]!] as { data_offsets?: unknown })?.data_offsets;
      else if (m.kind === "delete") delete h[name];
      else if (m.kind === "rename") {
        delete h[name];
        h[m.to] = t;
      } else {
        badByte = m.byte;
        badName = name;
      }
    }
    const json = JSON.stringify(h);
    // A raw invalid byte inside a name: JSON text cannot carry one, so it is patched into the encoded bytes.
    const { bytes, size } = withHeader(json, delta);
    if (badByte >= 0 && json.includes(`"${badName}"`)) {
      bytes[8 + new TextEncoder().encode(json.slice(0, json.indexOf(`"${badName}"`) + 1)).length] = badByte;
    }
    check(bytes, size);
  }), { numRuns: 5000 });
});

test("duplicated names in the JSON text are caught by the checks that follow", () => {
  // JSON.parse keeps the last of two equal keys; the lost tensor is then missing, or its data overlaps.
  const a = tensorNames[1]!;
  const b = tensorNames[2]!;
  const text = new TextDecoder().decode(head.subarray(8)).replace(`"${b}"`, `"${a}"`);
  expect(() => {
    const tensors = parseSafetensorsHeader(withHeader(text).bytes, withHeader(text).size, NAME);
    safetensorsCheckpoint(dir, config, false, [{ file: NAME, tensors }]);
  }).toThrow(FormatError);
});

test.each<[string, () => { bytes: Uint8Array; size: number }, RegExp]>([
  ["a header length of 2^60", () => { const b = head.slice(); new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true); return { bytes: b, size: file.length }; }, /header length/],
  ["a file of 5 bytes", () => ({ bytes: head.subarray(0, 5), size: 5 }), /header length/],
  ["not JSON", () => withHeader("{\"a\": "), /header: not JSON/],
  ["a JSON array", () => withHeader("[]"), /header: is not a JSON object/],
  ["an unsupported dtype", () => withHeader(JSON.stringify({ ...headerJson, [tensorNames[0]!]: { ...headerJson[tensorNames[0]!], dtype: "F64" } })), /dtype: "F64" is not supported; supported: F32, F16, BF16/],
  ["a shape of 2^60 values", () => withHeader(JSON.stringify({ ...headerJson, [tensorNames[0]!]: { ...headerJson[tensorNames[0]!], shape: [2 ** 30, 2 ** 30] } })), /shape: .* cannot fit/],
  ["offsets past the end", () => withHeader(JSON.stringify({ ...headerJson, [tensorNames[0]!]: { ...headerJson[tensorNames[0]!], data_offsets: [0, 1e9] } })), /data_offsets/],
  ["overlapping tensors", () => withHeader(JSON.stringify({ ...headerJson, [tensorNames[1]!]: { ...headerJson[tensorNames[1]!], data_offsets: headerJson[tensorNames[0]!]!.data_offsets } })), /overlaps|data_offsets/],
  ["an unknown tensor", () => withHeader(JSON.stringify({ ...headerJson, "model.layers.0.self_attn.q_proj.bias": headerJson[tensorNames[0]!] })), /unexpected tensor|overlaps/],
])("%s → FormatError", (_, make, message) => {
  const { bytes, size } = make();
  expect(() => {
    const tensors = parseSafetensorsHeader(bytes, size, NAME);
    safetensorsCheckpoint(dir, config, false, [{ file: NAME, tensors }]);
  }).toThrow(message);
});

describe("config.json", () => {
  const base = hfConfigJson(config, { tied: false, dtype: "f16" }, "c.json");
  const keys = Object.keys(base);

  const tensors = parseSafetensorsHeader(head, file.length, NAME);

  test("1500 mutated configs: FormatError naming the field, or a valid LlamaConfig mapped onto the file's tensors", () => {
    // Sizes that validateConfig accepts (at most 2^24) but the file cannot hold are the lies that matter: nothing but
    // the tensors bounds them, and 2^24 layers once built 9 × 2^24 tensor names before the first was found missing.
    const big = fc.constantFrom(1 << 16, 1 << 20, (1 << 24) - 1, 1 << 24);
    const value = fc.oneof({ arbitrary: big, weight: 2 }, anyValue, fc.constant(undefined), fc.anything());
    fc.assert(fc.property(
      fc.array(fc.record({ key: fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 10 })), value }), { minLength: 1, maxLength: 4 }),
      (patches) => {
        const j: Record<string, unknown> = { ...base };
        for (const p of patches) j[p.key] = p.value;
        try {
          const { config: c, tied } = parseHfConfig(j, "c.json");
          validateConfig(c, "c.json");
          // What loadModel does next: map the config onto the tensors, then size the model before allocating.
          const ckpt = safetensorsCheckpoint(dir, c, tied, [{ file: NAME, tensors }]);
          for (const e of ckpt.tensors.values()) expect(e.shape).toEqual(canonicalShape(c, e.name));
          if (memoryNeed(ckpt, c).total > ENGINE_LIMIT) expect(memoryLimitMessage(ckpt, c)).toContain(dir);
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          expect(["c.json", NAME, dir]).toContain(e.file);
          expect(e.field.length).toBeGreaterThan(0);
        }
      },
    ), { numRuns: 1500 });
  });
});
