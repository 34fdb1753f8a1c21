// dynact as a library user gets it: the built package (dist/index.js and dist/types) imported by its name, from
// outside the sources. The README's "Library use" example runs as written, the declarations compile in a strict
// Node program, and what the CLI's gate options do the library's exports do too, with the same results.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { buildHeadGate, buildTeal, headGateBytes, loadModel, parseGateSpec, perplexity, readTextTokens } from "../index";
import { haveAssets, shared } from "./assets";
import { dynact } from "./cli-harness";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-lib-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The ```ts block of the README's "Library use" section. */
function readmeExample(): string {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Library use"));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error("README: no ts example under Library use");
  return m[1]!;
}

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt", "data/hellaswag_val_1000.jsonl"))(
  "the README's example", () => {
    test("runs as written from the repository root (the package imports itself by its name)", () => {
      // As an ES module from -e: the README says a .mjs at the root, which this is without writing into the repo.
      const r = spawnSync(process.execPath, ["--input-type=module", "-e", readmeExample()], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const [text, numbers] = r.stdout.trim().split("\n");
      expect(text).toMatch(/^, there was a little girl named Lily/); // greedy: run.c's continuation
      expect(numbers).toMatch(/^\d+\.\d+ \[ 0\.5, 0\.5, 0\.5, 0\.5, 0\.5 \] 0\.\d+ 0\.\d+$/);
    });
  });

test("the built package exports every error class it throws on purpose, each a DynactError", async () => {
  const lib = (await import(pathToFileURL(path.join(ROOT, "dist", "index.js")).href)) as Record<string, unknown>;
  for (const name of ["FormatError", "MemoryLimitError", "ShapeError", "HubError", "ContextLengthError"]) {
    const cls = lib[name] as (new (...a: string[]) => Error) | undefined;
    expect(cls, name).toBeTypeOf("function");
    expect(cls!.prototype, name).toBeInstanceOf(lib.DynactError as new () => Error);
  }
});

test("the declarations compile in a strict Node program, with and without the DOM lib, without skipLibCheck", () => {
  // A consumer beside its node_modules: dynact (this repository, by its package.json's exports) and @types/node.
  const consumer = path.join(dir, "consumer");
  mkdirSync(path.join(consumer, "node_modules"), { recursive: true });
  symlinkSync(ROOT, path.join(consumer, "node_modules", "dynact"), "dir");
  symlinkSync(path.join(ROOT, "node_modules", "@types"), path.join(consumer, "node_modules", "@types"), "dir");
  writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
  writeFileSync(path.join(consumer, "consumer.ts"), `${readmeExample()}
import { DynactError, FormatError, HubError, MemoryLimitError, ShapeError, type GenerateResult, type LoadedModel, type PerplexityResult } from "dynact";
const loaded: LoadedModel = m;
const r: GenerateResult = out;
const p: PerplexityResult = ppl;
try {
  loaded.model.close();
} catch (e) {
  if (e instanceof FormatError) console.log(e.file, e.field);
  // Every error class dynact throws on purpose is exported to be caught (ShapeError was not).
  else if (e instanceof MemoryLimitError || e instanceof ShapeError || e instanceof HubError || e instanceof DynactError) console.log(e.message);
}
const logits: Float32Array = loaded.model.forward(1, 0).f32();
console.log(r.tokens.length, p.mean_nll, logits.length);
`);
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  for (const lib of [["ES2023"], ["ES2023", "DOM"]]) {
    // Without DOM: "Cannot find namespace 'WebAssembly'" in engine/*.d.ts.
    writeFileSync(path.join(consumer, "tsconfig.json"), JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: false, types: ["node"], lib },
      files: ["consumer.ts"],
    }));
    const r = spawnSync(process.execPath, [tsc, "-p", consumer], { encoding: "utf8" });
    expect(r.stdout + r.stderr, lib.join(",")).toBe("");
    expect(r.status).toBe(0);
  }
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("as through the CLI", () => {
  const [model, tok, text] = [shared("models/stories260K.bin"), shared("models/tok512.bin"), shared("data/tinystories_val.txt")];
  const cli = (...gate: string[]) => {
    const r = dynact("perplexity", "-m", model, "-t", tok, "-d", text, "--ctx", "128", "--max-tokens", "600", "--threads", "1", "--json", ...gate);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { mean_nll: number };
  };

  test("perplexity under a head gate and under TEAL: the same as dynact perplexity's", () => {
    // buildHeadGate, headGateBytes and buildTeal were not exported: --head-gate and teal: had no library equivalent.
    const spec = "topk:0.5";
    const heads = loadModel(model, { tokenizer: tok, contextLength: 128, transposeWo: true, reserveBytes: headGateBytes(spec) });
    const ids = readTextTokens(text, heads.tokenizer, 600);
    heads.model.configureHeads(buildHeadGate(spec, heads.model), "skip");
    expect(perplexity(heads, ids).mean_nll).toBe(cli("--head-gate", spec, "--kv-policy", "skip").mean_nll);
    expect(() => heads.model.configureHeads(null, "drop" as "skip")).toThrow(/KV policy must be one of keep, skip, mask, got "drop"/);

    const teal = loadModel(model, { tokenizer: tok, contextLength: 128 });
    teal.model.configureTeal(buildTeal(parseGateSpec("teal:0.5"), teal.model, { calibrationIds: () => readTextTokens(text, teal.tokenizer, 2048) }));
    expect(perplexity(teal, ids).mean_nll).toBe(cli("--ffn-gate", "teal:0.5", "--calib-text", text, "--calib-tokens", "2048").mean_nll);
  });
});
