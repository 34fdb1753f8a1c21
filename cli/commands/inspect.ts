import { formatBytes } from "../../engine/engine";
import { entryBytes } from "../../models/checkpoint";
import { parameterCount, type LlamaConfig } from "../../models/config";
import { LlamaModel } from "../../models/llama";
import { openCheckpoint } from "../../models/load";
import { weightBytes } from "../../models/weights";
import { CHECKPOINT_OPTIONS, parse, requireString } from "../args";

export const help = `dynact inspect -m MODEL [--json]

Print a checkpoint's format, configuration, tensors and the engine memory it needs. Reads only the header.`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, CHECKPOINT_OPTIONS);
  if (v.help) return void console.log(help);
  const ckpt = openCheckpoint(requireString(v.model, "-m/--model"));
  const c = ckpt.config;
  const tied = !ckpt.tensors.has("output");
  const memory = weightBytes(ckpt) + LlamaModel.stateBytes(c);
  const tensors = [...ckpt.tensors.values()].map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, offset: e.fileOffset, bytes: entryBytes(e) }));
  if (v.json) {
    // A Float32Array (rope_freqs divisors) would print as an object keyed by index.
    console.log(JSON.stringify({ path: ckpt.path, format: ckpt.format, config: c, tied_output: tied,
      parameters: parameterCount(c, tied), memory_bytes: memory, tensors }, (_, x) => (x instanceof Float32Array ? Array.from(x) : x)));
    return;
  }
  const lines = [
    `${ckpt.path}: ${ckpt.format}`,
    `  dim ${c.dim}, hidden ${c.hiddenDim}, layers ${c.nLayers}, heads ${c.nHeads}, kv heads ${c.nKvHeads}, vocab ${c.vocabSize}, context ${c.seqLen}`,
    `  activation ${c.activation}, rope theta ${c.ropeTheta}, rms eps ${c.normEps}, output ${tied ? "tied to the embedding" : "separate"}`,
    ...(c.ropeScaling ? [`  rope scaling ${ropeScalingText(c.ropeScaling)}`] : []),
    `  ${parameterCount(c, tied).toLocaleString("en-US")} parameters; engine memory ${formatBytes(memory)} (weights + KV cache + scratch)`,
    `  ${tensors.length} tensors:`,
    ...tensors.map((t) => `    ${t.name.padEnd(22)} ${t.dtype} [${t.shape.join(", ")}]`),
  ];
  console.log(lines.join("\n"));
}

function ropeScalingText(s: NonNullable<LlamaConfig["ropeScaling"]>): string {
  if (s.type === "llama3") {
    return `llama3: factor ${s.factor}, low_freq_factor ${s.lowFreqFactor}, high_freq_factor ${s.highFreqFactor}, original context ${s.originalContext}`;
  }
  const d = [...s.divisors];
  return `llama.cpp rope_freqs: ${d.length} frequency divisors from ${Math.min(...d)} to ${Math.max(...d)}`;
}
