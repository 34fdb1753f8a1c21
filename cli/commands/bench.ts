import { runAttentionBench } from "../../bench/attention";
import { runDecodeBench } from "../../bench/decode";
import { runGatedDecodeBench } from "../../bench/gated-decode";
import { runKernelBench } from "../../bench/kernels";
import { runLoadBench } from "../../bench/load";
import { runPerplexityBench } from "../../bench/perplexity";
import { runPrefillBench } from "../../bench/prefill";
import { runTrainBench } from "../../bench/train";
import { crossovers, FFN_SHAPES, runSparseFfnBench } from "../../bench/sparse-ffn";
import { shapeByName, SHAPES, type BenchShape } from "../../bench/shapes";
import type { Summary } from "../../bench/stats";
import { isPosInt, number, options, parse, threadListOption, valueOptions } from "../args";
import { UsageError } from "../usage-error";

export const help = `dynact bench [SUITE] [options] [--json]

Benchmarks on deterministic random-weight models (written once to $DYNACT_BENCH_DIR, default the system temp dir).
Results are medians (and ranges) of repeated runs; compare ratios measured in one run, never absolute numbers
across machines. Suites (default: kernels, the first in ../shared/DESIGN.md's \`bench [kernels|decode]\`):

  decode     decode tokens/s, f32, greedy from BOS, at ${SHAPES.map((s) => s.name).join(", ")}. With LLAMA2C_RUN pointing
             to a built llama2.c \`run\`, the same checkpoints run through it in the same session, interleaved round by
             round, and the ratio of medians is printed.
             With LLAMA_BENCH pointing to llama.cpp's \`llama-bench\`, the same weights as GGUF run through it too (1 thread).
               --shapes A,B  --steps N (default 256)  --rounds R (default 5)  --threads T,U (default 1)
               --dtypes f32,f16,q8_0,q4_0 (default f32; others load a GGUF of the same random weights)
               --shapes 1B: the 1B-class shape (dim 2048, hidden 5632, 22 layers, 32 heads, 4 KV heads), quantized
               only (its f32 weights exceed wasm32's 4 GiB)
             --json: {"decode":[{"shape","dtype","threads","tokens_per_second",…}]}
  kernels    every matvec kernel (f32, f16, bf16, q8_0, q4_0) at the stories110M and a 1B-class shape, weights
             rotated through more memory than the caches hold, next to the measured read bandwidth and f32 mul + add
             peak; then the sparse FFN block (dense vs gather) at sparsity 0–99%.
             --json: {"kernels":[…],"read_gbps","peak_gflops","ffn":[{"shape","dtype","path","sparsity","dense_ms","gather_ms"}…],
             "crossover":[{"shape","dtype","path","sparsity"}…]} (sparsity: the lowest at which gather is not slower, or null)
  ffn        the sparse FFN block alone (as in kernels): known (gate, up, down gathered) and gate-dense paths,
             f32 and q8_0  --shapes stories110M,1B  --dtypes f32,q8_0
  gated      end-to-end decode at the stories110M shape: dense vs neuron gates in gather mode (calibrated on
             random tokens; predictor:F = a fitted rank-32 predictor keeping the top F, its cost included)
               --gates G1,G2 (default dense,cats:0.5,cett:0.2,predictor:0.5)  --rounds R  --steps N
  attention  the attention block at head sparsity 0/50/75%, keep vs skip KV, contexts 256 and 1024
  load       checkpoint load time vs \`cat FILE > /dev/null\` (warm cache)  --shapes A,B (default stories110M)  --rounds R
  perplexity tokens scored per second by dynact perplexity, batched vs token by token  --shapes A,B  --rounds R
  train      training throughput (forward, backward, AdamW steps; tokens/s) at the stories260K shape that
             \`dynact relufy\` is measured on, batch 4 × 256, one thread: wasm kernels vs the plain-TS ops  --rounds R
             --json: {"train":[{"backend","batch","seq","tokens_per_second"}…]}
  prefill    prompt processing (64 tokens) batched vs token by token, f32, at the stories shapes; with LLAMA_BENCH
             set, llama-bench's pp64 on a GGUF of the same weights at the same thread counts, in the same rounds
               --shapes A,B  --rounds R (default 3)  --threads T,U (default 1,2)
             --json: {"prefill":[{"shape","dtype","threads","prefill_tokens_per_second",…}]}`;

// The suites' options (besides --json), and each suite's: one it does not take is an error, not silently ignored.
const SUITE_VALUE_OPTIONS = ["shapes", "steps", "rounds", "threads", "gates", "dtypes"] as const;
const SUITE_OPTIONS: Readonly<Record<string, readonly (typeof SUITE_VALUE_OPTIONS)[number][]>> = {
  decode: ["shapes", "steps", "rounds", "threads", "dtypes"], kernels: [], ffn: ["shapes", "dtypes"], gated: ["gates", "rounds", "steps"],
  attention: [], prefill: ["shapes", "rounds", "threads"], perplexity: ["shapes", "rounds"], load: ["shapes", "rounds"], train: ["rounds"],
};
const SUITES = Object.keys(SUITE_OPTIONS).join(", ");
const DEFAULT_SUITE = "kernels";

const fmt = (x: Summary) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;

/** --shapes A,B: shapes by name (or the fallback list); undefined when neither is given (the suite's own). */
function shapesOption(v: string | undefined): BenchShape[] | undefined;
function shapesOption(v: string | undefined, fallback: string): BenchShape[];
function shapesOption(v: string | undefined, fallback?: string): BenchShape[] | undefined {
  try {
    return (v ?? fallback)?.split(",").map(shapeByName);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function run(argv: string[]): Promise<void> {
  if (argv[0] === "--help" || argv[0] === "-h") return void console.log(help);
  const named = argv.length > 0 && !argv[0]!.startsWith("-");
  const suite = named ? argv[0]! : DEFAULT_SUITE;
  const rest = named ? argv.slice(1) : argv;
  const { values: v } = parse(rest, { ...valueOptions(...SUITE_VALUE_OPTIONS), ...options("json", "help") });
  if (v.help) return void console.log(help);
  const takes = Object.hasOwn(SUITE_OPTIONS, suite) ? SUITE_OPTIONS[suite]! : undefined;
  if (!takes) throw new UsageError(`unknown benchmark '${suite}' (available: ${SUITES})`);
  for (const name of SUITE_VALUE_OPTIONS) {
    if (v[name] !== undefined && !takes.includes(name)) {
      throw new UsageError(`--${name} is not an option of bench ${suite} (${takes.length ? `it takes ${takes.map((t) => `--${t}`).join(", ")}` : "it takes none"})`);
    }
  }
  const log = (l: string) => process.stderr.write(`${l}\n`);
  if (!named) log(`no SUITE given: running ${DEFAULT_SUITE} (suites: ${SUITES})`);
  const rounds = number(v.rounds, "--rounds", 5, isPosInt, "a positive integer");
  const print = (json: unknown, text: () => string[]) => console.log(v.json ? JSON.stringify(json) : text().join("\n"));
  switch (suite) {
    case "decode": {
      const shapes = shapesOption(v.shapes);
      const steps = number(v.steps, "--steps", 256, (n) => isPosInt(n) && n >= 2, "an integer >= 2");
      const threads = threadListOption(v.threads, "1");
      const dtypes = (v.dtypes ?? "f32").split(",");
      for (const d of dtypes) if (!["f32", "f16", "q8_0", "q4_0"].includes(d)) throw new UsageError(`--dtypes: unknown ${d} (f32, f16, q8_0, q4_0)`);
      const results = runDecodeBench({ shapes, steps, rounds, threads, dtypes: dtypes as ("f32" | "f16" | "q8_0" | "q4_0")[], log });
      return print({ decode: results }, () => results.map((r) =>
        `${r.shape.padEnd(12)} ${r.dtype.padEnd(5)} ${r.threads} thread${r.threads > 1 ? "s" : ""}: dynact ${fmt(r.tokens_per_second)} tok/s` +
        (r.llama2c_tokens_per_second ? `, llama2.c ${fmt(r.llama2c_tokens_per_second)} tok/s, ratio ${r.ratio_vs_llama2c!.toFixed(2)}×` : "") +
        (r.llamacpp_tokens_per_second ? `, llama.cpp ${fmt(r.llamacpp_tokens_per_second)} tok/s, ratio ${r.ratio_vs_llamacpp!.toFixed(2)}×` : "")));
    }
    case "kernels":
    case "ffn": {
      const kernels = suite === "kernels" ? runKernelBench({ log }) : null;
      // ffn: --shapes stories110M,1B and --dtypes f32,q8_0 narrow the FFN block's cases (kernels runs them all).
      const ffnShapes = suite === "ffn" && v.shapes ? v.shapes.split(",").map((name) => {
        const s = FFN_SHAPES.find((f) => f.name === name);
        if (!s) throw new UsageError(`--shapes: unknown FFN shape ${name} (${FFN_SHAPES.map((f) => f.name).join(", ")})`);
        return s;
      }) : undefined;
      const ffnDtypes = suite === "ffn" && v.dtypes ? v.dtypes.split(",").map((d) => {
        if (d !== "f32" && d !== "q8_0") throw new UsageError(`--dtypes: the FFN block runs f32 or q8_0, got ${d}`);
        return d;
      }) : undefined;
      const ffn = await runSparseFfnBench({ log, shapes: ffnShapes, dtypes: ffnDtypes });
      const ffnRows = ffn.map(({ shape, dtype, path, sparsity, dense_ms, gather_ms }) => ({ shape, dtype, path, sparsity, dense_ms, gather_ms }));
      return print({ ...(kernels ?? {}), ffn: ffnRows, crossover: crossovers(ffn) }, () => [
        ...(kernels ? [`read bandwidth ${kernels.read_gbps.toFixed(1)} GB/s, mul + add peak ${kernels.peak_gflops.toFixed(1)} GFLOP/s`, ...kernels.kernels.map((k) =>
          `${k.kernel.padEnd(12)} ${k.model} ${k.shape.padEnd(10)} ${k.dtype.padEnd(5)} ${k.ms.toFixed(3)} ms ${k.gflops.toFixed(1)} GFLOP/s ${k.gbps.toFixed(1)} GB/s`)] : []),
        ...ffn.map((r) => `ffn ${r.shape} ${r.dtype.padEnd(4)} ${r.path.padEnd(10)} sparsity ${String(r.sparsity).padEnd(4)} dense ${r.dense_ms.toFixed(3)} ms, gather ${r.gather_ms.toFixed(3)} ms (${(r.dense_ms / r.gather_ms).toFixed(2)}×)`),
        ...crossovers(ffn).map((c) => `crossover ${c.shape} ${c.dtype} ${c.path}: gather pays from ${c.sparsity === null ? "never" : `${100 * c.sparsity}% sparsity`}`),
      ]);
    }
    case "gated": {
      const gates = (v.gates ?? "dense,cats:0.5,cett:0.2,predictor:0.5").split(",");
      if (gates[0] !== "dense") gates.unshift("dense");
      const steps = number(v.steps, "--steps", 128, (n) => isPosInt(n) && n >= 2, "an integer >= 2");
      const rows = runGatedDecodeBench({ shape: shapeByName("stories110M"), gates, rounds, steps, log });
      return print({ gated: rows }, () => rows.map((r) =>
        `${r.shape} ${r.gate.padEnd(10)} ${fmt(r.tokens_per_second)} tok/s, active ${(100 * r.active_fraction).toFixed(1)}%, ${r.speedup.toFixed(2)}× dense`));
    }
    case "attention": {
      const rows = await runAttentionBench({ log });
      return print({ attention: rows }, () => rows.map((r) =>
        `context ${r.context} head sparsity ${r.head_sparsity} ${r.policy}: ${r.ms.toFixed(3)} ms (${r.speedup.toFixed(2)}× dense)`));
    }
    case "prefill": {
      const shapes = shapesOption(v.shapes);
      const threads = threadListOption(v.threads, "1,2");
      const rows = runPrefillBench({ shapes, rounds: v.rounds === undefined ? 3 : rounds, threads, log });
      return print({ prefill: rows }, () => rows.map((r) =>
        `${r.shape.padEnd(12)} ${r.dtype} ${r.threads} thread${r.threads > 1 ? "s" : ""}: batched ${fmt(r.prefill_tokens_per_second)} tok/s, ` +
        `token by token ${fmt(r.token_by_token_tokens_per_second)} tok/s` +
        (r.llamacpp_prefill_tokens_per_second ? `, llama.cpp ${fmt(r.llamacpp_prefill_tokens_per_second)} tok/s, ratio ${r.ratio_vs_llamacpp!.toFixed(2)}×` : "")));
    }
    case "load": {
      const shapes = shapesOption(v.shapes, "stories110M");
      const rows = runLoadBench({ shapes, rounds, log });
      return print({ load: rows }, () => rows.map((r) =>
        `${r.shape.padEnd(12)} ${(r.bytes / 1e6).toFixed(0)} MB: load ${fmt(r.load_ms)} ms, cat ${fmt(r.cat_ms)} ms, ratio ${r.ratio.toFixed(2)}×`));
    }
    case "perplexity": {
      const shapes = shapesOption(v.shapes, "stories15M,stories110M");
      const rows = runPerplexityBench({ shapes, rounds: v.rounds === undefined ? 3 : rounds, log });
      return print({ perplexity: rows }, () => rows.map((r) =>
        `${r.shape.padEnd(12)} ${r.tokens} tokens: batched ${fmt(r.batched_tokens_per_second)} tok/s, token by token ${fmt(r.token_by_token_tokens_per_second)} tok/s`));
    }
    case "train": {
      const rows = runTrainBench({ rounds: v.rounds === undefined ? 3 : rounds, log });
      return print({ train: rows }, () => rows.map((r) =>
        `train ${r.backend.padEnd(4)} ${r.batch}×${r.seq}: ${fmt(r.tokens_per_second)} tokens/s`));
    }
    default:
      throw new UsageError(`unknown benchmark '${suite}' (available: ${SUITES})`);
  }
}

