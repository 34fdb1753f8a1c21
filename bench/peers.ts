// The native peers the benchmarks compare with, run as child processes on the same weights in the same session:
// llama2.c's `run` (LLAMA2C_RUN) and llama.cpp's `llama-bench` (LLAMA_BENCH), both built outside the repository.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { DynactError } from "../engine/errors";

/** A peer binary from the option or its environment variable; undefined when neither is set. */
export function peerBinary(envName: "LLAMA2C_RUN" | "LLAMA_BENCH", given?: string): string | undefined {
  const file = given ?? process.env[envName];
  if (file && !existsSync(file)) throw new DynactError(`${envName}=${file}: no such file`);
  return file || undefined;
}

/**
 * llama-bench's tokens/s on a GGUF, one repetition: decode of `generate` tokens (-p 0 -n N, its tg test) or
 * processing of a `prompt` of N tokens (-p N -n 0, its pp test).
 */
export function llamaCppTokensPerSecond(bench: string, model: string, test: { generate: number } | { prompt: number }, threads = 1): number {
  const [p, n] = "prompt" in test ? [test.prompt, 0] : [0, test.generate];
  const r = spawnSync(bench, ["-m", model, "-p", String(p), "-n", String(n), "-t", String(threads), "-r", "1", "-o", "json"], { encoding: "utf8" });
  let tps: number | undefined;
  try {
    tps = (JSON.parse(r.stdout) as { avg_ts: number }[])[0]?.avg_ts;
  } catch {
    // reported below
  }
  if (r.status !== 0 || !tps) throw new DynactError(`llama-bench failed (${bench}): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`);
  return tps;
}

/** llama2.c's own tokens/s of greedy decoding `steps` positions from BOS (run.c times itself). */
export function llama2cTokensPerSecond(run: string, model: string, tokenizer: string, steps: number): number {
  const r = spawnSync(run, [model, "-z", tokenizer, "-t", "0", "-n", String(steps), "-i", ""], { encoding: "utf8" });
  const m = /achieved tok\/s: ([\d.]+)/.exec(r.stderr ?? "");
  if (r.status !== 0 || !m) throw new DynactError(`llama2.c run failed (${run}): ${(r.stderr || r.error?.message || "").trim()}`);
  return Number(m[1]);
}
