import { statSync } from "node:fs";
import path from "node:path";
import { DynactError } from "../../engine/errors";
import type { Checkpoint } from "../../models/checkpoint";
import { convertToGguf, type GgufDType } from "../../models/formats/gguf";
import { ggufTokenizerMetadata, type GgufTokenizer } from "../../models/formats/gguf-tokenizer";
import type { HfDType } from "../../models/formats/hf-config";
import { writeLlama2cCheckpoint } from "../../models/formats/llama2c";
import { writeSafetensors } from "../../models/formats/safetensors";
import { loadTokenizer, openCheckpoint } from "../../models/load";
import { SentencePieceBpeTokenizer } from "../../models/tokenizer/sentencepiece-bpe";
import { TokenizerJson } from "../../models/tokenizer/tokenizer-json";
import { tensorSource } from "../../models/weights";
import { CHECKPOINT_OPTIONS, options, outputDir, outputFile, parse, requireString } from "../args";
import { UsageError } from "../usage-error";

export const help = `dynact convert -m MODEL -o OUT --to gguf|safetensors|llama2c [--dtype DTYPE] [-t TOKENIZER] [--json]

Convert a checkpoint (llama2.c .bin, .gguf or Hugging Face folder) to another format, one tensor at a time.

  -m, --model PATH        the checkpoint to read
  -o, --output PATH       the file to write (for safetensors: a folder, created if needed)
      --to FORMAT         gguf (v3), safetensors (config.json + model.safetensors) or llama2c (legacy v0, as run.c reads)
      --dtype DTYPE       type of the weight matrices (default f32):
                            gguf: f32, f16, bf16, q8_0, q4_0 (norms stay f32; quantized rows that are not a
                                  multiple of 32 values are written as f16, with a note)
                            safetensors: f32, f16, bf16; llama2c: f32
  -t, --tokenizer FILE    the model's tokenizer (default: the one it loads with; none: a note). gguf embeds it: a
                          SentencePiece one (tokenizer.bin, .gguf) as "llama", a byte-level BPE tokenizer.json
                          (LLaMA-3, SmolLM, Qwen2, GPT-2 pre-tokenizers) as "gpt2"; another tokenizer.json: an error.
                          safetensors writes its BOS and EOS ids into config.json (not the tokenizer itself)
      --json              {"output","format","dtype","tensors","fallbacks","tokenizer"} on stdout`;

const TARGETS: Record<string, readonly string[]> = {
  gguf: ["f32", "f16", "bf16", "q8_0", "q4_0"],
  safetensors: ["f32", "f16", "bf16"],
  llama2c: ["f32"],
};

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...CHECKPOINT_OPTIONS,
    ...options("tokenizer", "output"),
    to: { type: "string" },
    dtype: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  const out = requireString(v.output, "-o/--output");
  const to = requireString(v.to, "--to");
  const dtypes = Object.hasOwn(TARGETS, to) ? TARGETS[to]! : undefined;
  if (!dtypes) throw new UsageError(`--to must be one of ${Object.keys(TARGETS).join(", ")}, got '${to}'`);
  const dtype = v.dtype ?? "f32";
  if (!dtypes.includes(dtype)) throw new UsageError(`--to ${to} writes --dtype ${dtypes.join(", ")}; got '${dtype}'`);
  // A GGUF holds the tokenizer, config.json its BOS and EOS ids; a llama2.c file nothing (-t would be silently dropped).
  if (v.tokenizer !== undefined && to === "llama2c") {
    throw new UsageError("-t/--tokenizer is for --to gguf (embedded) and safetensors (its ids in config.json); --to llama2c writes no tokenizer");
  }
  if (to === "safetensors") outputDir(out, "-o");
  else outputFile(out, "-o");

  const ckpt = openCheckpoint(file);
  refuseOverwritingInput(ckpt, out, to === "safetensors" ? path.join(out, "model.safetensors") : out);
  // Non-f32 sources are dequantized: every writer takes f32 values and encodes them itself.
  const { tied, tensor } = tensorSource(ckpt);
  const note = (line: string) => process.stderr.write(`${line}\n`);
  let fallbacks: { name: string; dtype: string; reason: string }[] = [];
  let withTokenizer = false;
  if (to === "gguf") {
    const tokenizer = tokenizerFor(ckpt, v.tokenizer, note);
    withTokenizer = tokenizer !== undefined;
    fallbacks = convertToGguf(ckpt, out, dtype as GgufDType, tokenizer).fallbacks;
    for (const f of fallbacks) note(`note: ${f.name} written as ${f.dtype}: ${f.reason}`);
  } else if (to === "safetensors") {
    writeSafetensors(out, ckpt.config, tensor, { dtype: dtype as HfDType, tied, specialIds: specialIds(ckpt, v.tokenizer, note) });
  } else {
    writeLlama2cCheckpoint(out, ckpt.config, tensor, { version: 0, tied });
  }
  const tensors = ckpt.tensors.size;
  if (v.json) {
    console.log(JSON.stringify({ output: out, format: to, dtype, tensors, fallbacks, tokenizer: withTokenizer }));
  } else {
    note(`wrote ${out}: ${to}, ${dtype}, ${tensors} tensors${to === "gguf" ? withTokenizer ? ", with tokenizer" : ", no tokenizer" : ""}`);
  }
}

// The writers truncate their output first and read the model's tensors one at a time while they write, so an output
// that is the model's own file (-o MODEL, or the model's folder for safetensors) would destroy the model and leave
// nothing valid behind.
function refuseOverwritingInput(ckpt: Checkpoint, out: string, written: string): void {
  const inputs = new Set([ckpt.path, ...[...ckpt.tensors.values()].map((e) => e.file ?? ckpt.path)]);
  for (const input of inputs) {
    if (sameFile(input, written)) throw new UsageError(`-o ${out} would overwrite the model being converted (${input}): write to another path`);
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false; // the output does not exist yet
  }
}

// config.json's bos_token_id / eos_token_id: those of -t, else of the tokenizer the model loads with (LLaMA-3's are
// not 1 and 2). Without -t, none found is a note (whose advice, -t, is taken here).
function specialIds(ckpt: Checkpoint, explicit: string | undefined, note: (line: string) => void): { bos: number; eos: number } | undefined {
  const tok = noteIfAbsent(() => loadTokenizer(ckpt, explicit), explicit, note, "config.json gets no bos_token_id / eos_token_id");
  return tok && { bos: tok.bosId, eos: tok.eosId };
}

// `load()`, whose DynactError is only a note (saying what the output then lacks) when no -t was given: the output is
// still a complete model. A -t that fails is the command's error.
function noteIfAbsent<T>(load: () => T, explicit: string | undefined, note: (line: string) => void, lacking: string): T | undefined {
  try {
    return load();
  } catch (e) {
    if (explicit !== undefined || !(e instanceof DynactError)) throw e;
    note(`note: ${lacking} (${e.message})`);
    return undefined;
  }
}

// The tokenizer the model loads with, for a GGUF's metadata: SentencePiece as "llama", a byte-level tokenizer.json
// as "gpt2". Without -t its absence is only a note: the file is still a complete model, and -t can supply a
// tokenizer when it runs.
function tokenizerFor(ckpt: Checkpoint, explicit: string | undefined, note: (line: string) => void): GgufTokenizer | undefined {
  const tok = noteIfAbsent(() => loadTokenizer(ckpt, explicit), explicit, note, "no tokenizer written");
  if (tok instanceof TokenizerJson) {
    // A tokenizer.json a GGUF cannot hold says why here.
    return noteIfAbsent(() => (ggufTokenizerMetadata(tok), tok), explicit, note, "no tokenizer written");
  }
  if (tok === undefined) return undefined;
  if (!(tok instanceof SentencePieceBpeTokenizer)) {
    throw new DynactError("only SentencePiece (llama2.c tokenizer.bin) and byte-level BPE tokenizer.json tokenizers can be stored in a GGUF");
  }
  return tok;
}
