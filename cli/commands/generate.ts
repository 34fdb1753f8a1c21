import { generate } from "../../models/generate";
import { loadModel } from "../../models/load";
import { Sampler } from "../../models/sampler";
import { ctxOption, isNonNegInt, isPosInt, MODEL_OPTIONS, number, options, parse, requireString, threadsOption, THREADS_HELP } from "../args";
import { applyGate, ffnStatLines, GATE_HELP, GATE_OPTIONS, headStatLines, layoutFor, parseGateOptions } from "../gate-options";
import { logLine } from "../log";

export const help = `dynact generate -m MODEL [-t TOKENIZER] [-p PROMPT] [-n STEPS] [options]

Generate text from a prompt. Writes only the continuation to stdout; statistics go to stderr.

  -m, --model PATH        llama2.c checkpoint (.bin), .gguf, Hugging Face folder (config.json + safetensors), or
                          hf:OWNER/REPO[/FILE] (downloaded once into the Hugging Face cache)
  -t, --tokenizer FILE    tokenizer.bin, .gguf, tokenizer.json or a folder with one (default: the GGUF's own, or
                          tokenizer.bin beside a llama2.c file, or tokenizer.json/tokenizer.bin in the model's folder)
  -p, --prompt TEXT       prompt (default: empty; BOS is always prepended)
  -n, --steps N           new tokens to generate (default 256; cut to what the context leaves)
      --temperature T     0 = greedy argmax, ties to the lowest id (default 1.0)
      --top-p P           nucleus sampling in (0, 1]; 1 = off (default 0.9)
      --top-k K           keep the K most likely tokens; 0 = off (default 0)
      --seed S            RNG seed, a positive integer (default: from the clock, printed to stderr)
${GATE_HELP}
      --ctx N             cap the context length (KV cache positions)
${THREADS_HELP}
      --json              print one JSON object instead of text
Generation stops at EOS, and for llama2.c checkpoints also at BOS (as llama2.c's run.c does).`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...MODEL_OPTIONS,
    prompt: { type: "string", short: "p", default: "" },
    steps: { type: "string", short: "n" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    ...options("ctx"),
    ...GATE_OPTIONS,
  });
  if (v.help) return void console.log(help);
  const model = requireString(v.model, "-m/--model");
  const steps = number(v.steps, "-n/--steps", 256, isNonNegInt, "a non-negative integer");
  // The sampler keeps it in f32 (as run.c does): beyond f32's range it would be infinite.
  const temperature = number(v.temperature, "--temperature", 1.0, (n) => n >= 0 && Number.isFinite(Math.fround(n)), "a number from 0 to 3.4e38");
  const topP = number(v["top-p"], "--top-p", 0.9, (n) => n > 0 && n <= 1, "in (0, 1]");
  const topK = number(v["top-k"], "--top-k", 0, isNonNegInt, "a non-negative integer");
  // run.c's xorshift* state stays 0 forever from seed 0, so seeds start at 1.
  const seed = number(v.seed, "--seed", 1 + (Date.now() % 2 ** 31), (n) => isPosInt(n) && n <= Number.MAX_SAFE_INTEGER, "a positive integer");
  const ctx = ctxOption(v.ctx);
  const gates = parseGateOptions(v);
  const log = (line: string) => logLine(line);

  const loaded = loadModel(model, {
    tokenizer: v.tokenizer, activation: gates.activation, contextLength: ctx, ...layoutFor(gates),
    threads: threadsOption(v.threads),
  });
  applyGate(loaded, gates, log);
  const sampler = new Sampler(loaded.model.config.vocabSize, { temperature, topP, topK, seed });
  const result = generate(loaded, {
    prompt: v.prompt!, maxNewTokens: steps, sampler,
    onText: v.json ? undefined : (t) => process.stdout.write(t),
  });
  const tokensPerSecond = result.tokens.length / Math.max(result.generateSeconds, 1e-9);
  if (v.json) {
    console.log(JSON.stringify({
      prompt_tokens: result.promptTokens, tokens: result.tokens, text: result.text, stop: result.stop,
      tokens_per_second: tokensPerSecond,
      prompt_tokens_per_second: (result.promptTokens.length - 1) / Math.max(result.promptSeconds, 1e-9),
      seed, temperature, top_p: topP, top_k: topK, activation: loaded.model.modules.activation.name,
      ffn_gate: v["ffn-gate"] ?? "dense", ffn_mode: gates.mode, ffn: loaded.model.ffnStats.summary(),
      head_gate: gates.headGate, kv_policy: gates.kvPolicy, attention: loaded.model.attentionStats,
    }));
  } else {
    process.stdout.write("\n");
  }
  if (result.budget < steps) {
    process.stderr.write(`note: -n ${steps} cut to ${result.budget}: the context holds ${loaded.model.config.seqLen} positions\n`);
  }
  process.stderr.write(
    `${result.tokens.length} tokens, ${tokensPerSecond.toFixed(1)} tokens/s, stop: ${result.stop}, seed ${seed}\n`,
  );
  // Under a gate, its sparsity goes to stderr too (with --json it is in the object).
  if (!v.json) {
    const lines = [
      ...(gates.spec.kind !== "dense" ? ffnStatLines(loaded.model.ffnStats.summary()) : []),
      ...(gates.headGate !== "dense" ? headStatLines(loaded.model.attentionStats) : []),
    ];
    for (const line of lines) log(line);
  }
}
