// --ctx against the model's context: one rule (models/load.ts runContextLength, checked where the model is loaded)
// and one message from every command that takes --ctx, with the checkpoint's header read once per run. The
// commands run in this process, their header reads counted at the llama2.c reader; the exit code is main's (below,
// through the built CLI).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, test, vi } from "vitest";
import * as calibrate from "../cli/commands/calibrate";
import * as fitPredictors from "../cli/commands/fit-predictors";
import * as generate from "../cli/commands/generate";
import * as perplexity from "../cli/commands/perplexity";
import * as quantReport from "../cli/commands/quant-report";
import { ContextLengthError } from "../models/load";
import { haveAssets, shared } from "./assets";
import { dynact, expectFailure } from "./cli-harness";

const headerReads = vi.hoisted(() => ({ n: 0 }));
vi.mock("../models/formats/llama2c", async (importOriginal) => {
  const m = await importOriginal<typeof import("../models/formats/llama2c")>();
  return { ...m, readLlama2cCheckpoint: (file: string) => (headerReads.n++, m.readLlama2cCheckpoint(file)) };
});

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-ctx-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("on stories260K (context 512)", () => {
  const model = shared("models/stories260K.bin");
  const m = ["-m", model, "-t", shared("models/tok512.bin"), "--threads", "1"];
  const text = [...m, "-d", shared("data/tinystories_val.txt"), "--max-tokens", "32"];
  // Every command that takes --ctx and checks it against the model (study cuts it to each model's context).
  const commands: [string, (argv: string[]) => Promise<void>, string[]][] = [
    ["generate", generate.run, [...m, "-n", "1"]],
    ["perplexity", perplexity.run, text],
    ["calibrate", calibrate.run, [...text, "--ffn-gate", "cats:0.5", "-o", path.join(dir, "c.json")]],
    ["fit-predictors", fitPredictors.run, [...text, "-o", path.join(dir, "p.bin"), "--epochs", "1"]],
    ["quant-report", quantReport.run, [...text, "--dtypes", "q8_0"]],
  ];
  beforeEach(() => void (headerReads.n = 0));

  test.each(commands)("%s --ctx 513: the one message, after one read of the header", async (_, run, argv) => {
    const e = await run([...argv, "--ctx", "513"]).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(ContextLengthError);
    expect((e as Error).message).toBe("--ctx 513 is longer than the model's context of 512");
    expect(headerReads.n).toBe(1);
  });

  test("a run within the context reads the header once too", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      for (const [name, run, argv] of commands.filter(([name]) => name === "generate" || name === "perplexity")) {
        headerReads.n = 0;
        await run([...argv, "--ctx", "16"]);
        expect(headerReads.n, name).toBe(1);
      }
    } finally {
      out.mockRestore();
      err.mockRestore();
      log.mockRestore();
    }
  });

  test("the built CLI exits 2 on it, with the same line, from every command", () => {
    for (const [name, , argv] of commands) {
      const r = dynact(name, ...argv, "--ctx", "513");
      expectFailure(r, 2, /^dynact: --ctx 513 is longer than the model's context of 512\nsee 'dynact [a-z-]+ --help'\n$/);
    }
  });
});
