// A model that cannot fit the 4 GiB wasm32 memory is refused before anything is allocated or read, with its size,
// the limit and what would fit (a quantization dynact convert writes, or a shorter context). The predicted sizes
// are the ones a converted file really has.
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ALIGN } from "../engine/arena";
import { buildNeuronGate } from "../eval/gate-factory";
import { DynactError, MemoryLimitError } from "../engine/errors";
import { canonicalShapes, entryBytes, type Checkpoint, type TensorEntry } from "../models/checkpoint";
import type { ActivationName, LlamaConfig } from "../models/config";
import { encodeGgufHeader, GGUF_ALIGNMENT, readGgufCheckpoint, writeGguf, type GgufDType } from "../models/formats/gguf";
import type { GgufValue } from "../models/formats/gguf-metadata";
import { ggufTokenizerMetadata } from "../models/formats/gguf-tokenizer";
import { parseGateSpec } from "../models/gates/spec";
import { buildModel } from "../models/load";
import { asDType, ENGINE_LIMIT, memoryNeed } from "../models/memory-fit";
import { llama3FreqFactors, ropeAngles, RopeTable } from "../models/rope";
import { Engine } from "../engine/engine";
import { TokenizerJson } from "../models/tokenizer/tokenizer-json";
import { weightBytes } from "../models/weights";
import { byteLevelJson } from "./byte-level-vocab";
import { dynact, expectFailure } from "./cli-harness";
import { randomWeights } from "./train-util";

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-memfit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GiB = 2 ** 30;
const base = { ropeTheta: 10000, normEps: 1e-5, activation: "silu" } as const;
// Shapes of published models (vocabulary and context as they have them).
const TINYLLAMA: LlamaConfig = { dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, seqLen: 2048, ...base };
const LLAMA2_7B: LlamaConfig = { dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000, seqLen: 4096, ...base };
const LLAMA2_70B: LlamaConfig = { dim: 8192, hiddenDim: 28672, nLayers: 80, nHeads: 64, nKvHeads: 8, vocabSize: 32000, seqLen: 4096, ...base };

/** A checkpoint header (no data: its file does not exist, so any read would fail). */
function header(config: LlamaConfig, dtype: GgufDType, file = "/nonexistent/model.gguf"): Checkpoint {
  const tensors = new Map<string, TensorEntry>();
  for (const [name, shape] of canonicalShapes(config)) {
    tensors.set(name, { name, shape, dtype: shape.length === 1 ? "f32" : dtype, fileOffset: 0 });
  }
  return { path: file, format: "gguf", config, tensors };
}

function refusal(ckpt: Checkpoint, opts: Parameters<typeof buildModel>[1] = {}): string {
  const t0 = performance.now();
  let err: unknown;
  try {
    buildModel(ckpt, opts);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MemoryLimitError);
  expect(performance.now() - t0).toBeLessThan(500); // refused from the header alone: nothing allocated, nothing read
  const msg = (err as Error).message;
  expect(msg).not.toContain("\n");
  expect(msg).toContain(`${ckpt.path}: the model needs `);
  expect(msg).toContain("but wasm32 memory is limited to 4.00 GiB");
  return msg;
}

const gib = (msg: string, re: RegExp) => Number(re.exec(msg)?.[1]);

describe("a model too large for wasm32 memory", () => {
  it("TinyLlama-1.1B in f32 (4.1 GiB of weights): f16 would fit, and the command to make it", () => {
    const ckpt = header(TINYLLAMA, "f32");
    const msg = refusal(ckpt);
    const need = memoryNeed(ckpt, TINYLLAMA);
    // Counted by hand: 2 × 32000·2048 (embedding, classifier) + 22 × (2·2048² + 2·256·2048 + 3·5632·2048 + 2·2048)
    // + 2048 = 1,100,048,384 values of 4 bytes, plus an arena alignment slot per tensor (22·9 + 3 of them).
    expect(need.weights).toBe(4 * 1_100_048_384 + 201 * ALIGN);
    expect(gib(msg, /needs ([\d.]+) GiB/)).toBeCloseTo(need.total / GiB, 2);
    expect(gib(msg, /weights ([\d.]+) GiB/)).toBeCloseTo(need.weights / GiB, 2);
    expect(msg).toMatch(/KV cache and buffers [\d.]+ MiB for a context of 2048/);
    const f16 = memoryNeed(asDType(ckpt, "f16"), TINYLLAMA).total;
    expect(f16).toBeLessThan(ENGINE_LIMIT);
    expect(msg).toContain(`as f16 it would need ${(f16 / GiB).toFixed(2)} GiB: convert it with \`dynact convert -m /nonexistent/model.gguf --to gguf --dtype f16 -o model-f16.gguf\``);
    expect(msg).not.toMatch(/--ctx/); // the f32 weights alone do not fit
  });

  it("LLaMA-2-7B: f32 and f16 are far off; q4_0 fits only with a shorter context (its f32 KV cache is 4 GiB at 4096)", () => {
    for (const dtype of ["f32", "f16"] as const) {
      const msg = refusal(header(LLAMA2_7B, dtype));
      const m = /as q4_0 it fits with a context of at most (\d+) positions: convert it with `dynact convert .* --dtype q4_0 .*`, then pass --ctx (\d+)$/.exec(msg);
      expect(m, msg).not.toBeNull();
      const ctx = Number(m![1]);
      // The context named is the longest that fits: one more position does not.
      const q4 = header(LLAMA2_7B, "q4_0");
      expect(memoryNeed(q4, { ...LLAMA2_7B, seqLen: ctx }).total).toBeLessThanOrEqual(ENGINE_LIMIT);
      expect(memoryNeed(q4, { ...LLAMA2_7B, seqLen: ctx + 1 }).total).toBeGreaterThan(ENGINE_LIMIT);
      // And a q4_0 file is refused with the context to use, no conversion.
      expect(refusal(q4)).toMatch(new RegExp(`; it fits if you cap the context at ${ctx} positions \\(--ctx ${ctx}\\)$`));
    }
  });

  it("LLaMA-2-70B: nothing fits, and it says so", () => {
    expect(refusal(header(LLAMA2_70B, "f16"))).toMatch(/; even as q4_0 its weights take 3[0-9]\.\d\d GiB: no weight type dynact loads makes it fit$/);
    expect(refusal(header(LLAMA2_70B, "q4_0"))).toMatch(/; even as q4_0 its weights take .*: no weight type dynact loads makes it fit$/);
  });

  it("a small model with a huge context: cap the context (both when a quantization would also do and when not)", () => {
    const long = { ...TINYLLAMA, seqLen: 1 << 17 };
    expect(refusal(header(long, "q8_0"))).toMatch(/for a context of 131072\).*; it fits if you cap the context at \d+ positions \(--ctx \d+\)$/);
    const f32 = refusal(header({ ...TINYLLAMA, nLayers: 14, seqLen: 60000 }, "f32"));
    expect(f32).toMatch(/; as f16 it would need .*; or cap the context at \d+ positions \(--ctx \d+\)$/);
  });

  it("module tensors (a predictor's reserve) count, and are named", () => {
    const ckpt = header(TINYLLAMA, "f16");
    expect(memoryNeed(ckpt, TINYLLAMA).total).toBeLessThan(ENGINE_LIMIT); // it fits without the reserve
    expect(refusal(ckpt, { reserveBytes: 2 * GiB })).toMatch(/\+ gate tensors 2\.00 GiB\)/);
  });

  it("bad load options are typed errors before anything is allocated or read", () => {
    const ckpt = header(TINYLLAMA, "q4_0");
    // reserveBytes NaN reached WebAssembly.Memory (a TypeError); an unknown activation loaded, then failed at the
    // first forward() with a TypeError.
    for (const reserveBytes of [NaN, -1, 0.5]) {
      expect(() => buildModel(ckpt, { reserveBytes })).toThrow(new DynactError(`reserveBytes must be a non-negative integer, got ${reserveBytes}`));
    }
    expect(() => buildModel(ckpt, { activation: "tanh" as ActivationName })).toThrow(new DynactError('activation "tanh" must be one of silu, relu, relu2, gelu'));
    expect(() => buildModel(ckpt, { downDType: "q4_0" as "f16" })).toThrow(new DynactError('downDType must be q8_0 or f16, got "q4_0"'));
  });

  it("the sizes predicted for a conversion are those of the file dynact convert writes", () => {
    const config: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 96, seqLen: 32, ...base };
    const weights = randomWeights(config, 3);
    const f32 = path.join(dir, "m.gguf");
    writeGguf(f32, config, (n) => Float32Array.from(weights(n)), { dtype: "f32", tied: false });
    const ckpt = readGgufCheckpoint(f32);
    for (const dtype of ["f16", "q8_0", "q4_0"] as const) {
      const out = path.join(dir, `m-${dtype}.gguf`);
      writeGguf(out, config, (n) => Float32Array.from(weights(n)), { dtype, tied: false });
      const written = readGgufCheckpoint(out);
      expect(weightBytes(asDType(ckpt, dtype)), dtype).toBe(weightBytes(written));
      for (const [name, e] of asDType(ckpt, dtype).tensors) expect(entryBytes(e), name).toBe(entryBytes(written.tensors.get(name)!));
      for (const layout of [{ transposeDown: true }, { transposeDown: true, downDType: "f16" as const }]) {
        expect(weightBytes(asDType(ckpt, dtype), layout)).toBe(weightBytes(written, layout));
      }
    }
  });

  it("memoryNeed is what a built model really takes: its arena after prefill, decode and gather-mode decode", () => {
    // The refusals and the longest contexts named above are computed from memoryNeed; this ties it to the arena.
    const config: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 96, seqLen: 48, ...base };
    const weights = randomWeights(config, 5);
    for (const dtype of ["f32", "f16", "q8_0", "q4_0"] as const) {
      const file = path.join(dir, `need-${dtype}.gguf`);
      writeGguf(file, config, (n) => Float32Array.from(weights(n)), { dtype, tied: false });
      const ckpt = readGgufCheckpoint(file);
      for (const contextLength of [1, 17, 48]) {
        for (const layout of [{}, { transposeDown: true }] as { transposeDown?: boolean }[]) {
          const model = buildModel(ckpt, { contextLength, ...layout });
          const ids = Array.from({ length: contextLength }, (_, i) => (i * 7) % config.vocabSize);
          model.prefill(ids);
          if (contextLength > 1) model.forward(3, contextLength - 1);
          if (layout.transposeDown) {
            model.configureFfn({ gate: buildNeuronGate(parseGateSpec("topk:0.5"), model), mode: "gather" });
            model.forward(4, contextLength - 1);
          }
          const need = memoryNeed(ckpt, { ...config, seqLen: contextLength }, layout).total;
          const used = model.engine.arena.used;
          // An upper bound, short by alignment slots only (~3.5 KiB here), nothing that grows with the model.
          expect(used, `${dtype} ctx ${contextLength}`).toBeLessThanOrEqual(need);
          expect(need - used, `${dtype} ctx ${contextLength}`).toBeLessThan(4096);
        }
      }
    }
  });

  it("the CLI refuses a 5 GiB GGUF (a sparse file) at once, exit 1, one line", () => {
    // 32 TinyLlama-shaped layers in f32 with the small byte-level vocabulary of the tokenizer tests (embedded).
    const tok = new TokenizerJson("t.json", byteLevelJson("gpt2"), {});
    const config: LlamaConfig = { ...TINYLLAMA, nLayers: 32, vocabSize: tok.vocabSize };
    const file = path.join(dir, "big.gguf");
    const u32 = (value: number): GgufValue => ({ type: "u32", value });
    const meta: [string, GgufValue][] = [
      ["general.architecture", { type: "string", value: "llama" }],
      ["llama.context_length", u32(config.seqLen)], ["llama.embedding_length", u32(config.dim)],
      ["llama.block_count", u32(config.nLayers)], ["llama.feed_forward_length", u32(config.hiddenDim)],
      ["llama.attention.head_count", u32(config.nHeads)], ["llama.attention.head_count_kv", u32(config.nKvHeads)],
      ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
      ...ggufTokenizerMetadata(tok),
    ];
    let offset = 0;
    const tensors = [...canonicalShapes(config)].filter(([n]) => n !== "output").map(([name, shape]) => {
      const t = { name: `${name}.weight`, shape, dtype: "f32" as const, offset };
      offset += Math.ceil((4 * shape.reduce((a, b) => a * b, 1)) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
      return t;
    });
    const head = encodeGgufHeader(meta, tensors);
    const fd = openSync(file, "w");
    try {
      writeSync(fd, head);
      ftruncateSync(fd, Math.ceil(head.length / GGUF_ALIGNMENT) * GGUF_ALIGNMENT + offset); // sparse: no data written
    } finally {
      closeSync(fd);
    }
    expect(offset).toBeGreaterThan(5 * GiB);
    const t0 = performance.now();
    const r = dynact("generate", "-m", file, "-p", "hello", "-n", "1");
    expect(performance.now() - t0).toBeLessThan(10_000);
    expectFailure(r, 1, /^dynact: .*big\.gguf: the model needs 5\.\d\d GiB of engine memory \(weights 5\.\d\d GiB \+ KV cache and buffers [\d.]+ MiB for a context of 2048\) but wasm32 memory is limited to 4\.00 GiB; as f16 it would need 2\.\d\d GiB: convert it with `dynact convert -m \S+big\.gguf --to gguf --dtype f16 -o big-f16\.gguf`\n/);
  });
});

describe("a long context from the header", () => {
  it("the RoPE table fills its rows as positions are reached, bit for bit the whole table's (plain, llama3, divisors)", () => {
    const seqLen = 1000;
    const headSize = 6;
    const llama3 = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16 } as const;
    for (const scaling of [undefined, llama3, { type: "divisors", divisors: llama3FreqFactors(headSize, 5e5, llama3) } as const]) {
      const table = new RopeTable(Engine.create(RopeTable.bytes(seqLen, headSize)), seqLen, headSize, 5e5, scaling);
      const whole = ropeAngles(seqLen, headSize, 5e5, scaling);
      expect(table.rows).toBe(0);
      for (const end of [1, 2, 65, 66, 300, 1000]) {
        table.ensure(end);
        expect(table.rows).toBeGreaterThanOrEqual(end);
        expect(table.rows).toBeLessThanOrEqual(Math.max(2 * end, 64)); // filled ahead at most by doubling
        const n = table.rows * (headSize / 2);
        expect(table.cos.f32().subarray(0, n)).toEqual(whole.cos.subarray(0, n));
        expect(table.sin.f32().subarray(0, n)).toEqual(whole.sin.subarray(0, n));
      }
      expect(table.rows).toBe(seqLen);
    }
  });

  it("a GGUF claiming 2^23 positions sizes its KV cache for them but computes no RoPE angles for positions not run", () => {
    // llama.context_length bounds nothing in the file: a 2 KiB model may claim 2^24 positions, and a model that still
    // fits (its KV cache is virtual memory until written) filled a RoPE table of every position at load, 2^23 × 2
    // angles here — seconds, and over 20 s for a 280 KiB model of head size 128 claiming 2^21.
    const config: LlamaConfig = { dim: 8, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 8, seqLen: 2 ** 23, ...base };
    const weights = randomWeights(config, 7);
    const file = path.join(dir, "long-context.gguf");
    writeGguf(file, config, (n) => Float32Array.from(weights(n)), { dtype: "f32", tied: true });
    const ckpt = readGgufCheckpoint(file);
    expect(memoryNeed(ckpt, config).state).toBeGreaterThan(config.seqLen * 4 * 4 * 2); // the KV cache of every position
    const model = buildModel(ckpt);
    model.prefill([1, 2, 3]);
    model.forward(4, 3);
    expect((model as unknown as { ropeTable: RopeTable }).ropeTable.rows).toBeLessThanOrEqual(64);
  });
});
