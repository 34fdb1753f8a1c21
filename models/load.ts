// From a path on disk to a runnable model: detect the format, size the engine for weights + state (refusing
// what cannot fit before reading a byte), stream the weights in, and find the matching tokenizer.
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { Engine } from "../engine/engine";
import { DynactError, MemoryLimitError } from "../engine/errors";
import { ACTIVATION_MODULES } from "./activation";
import type { Checkpoint } from "./checkpoint";
import { ACTIVATIONS, type ActivationName, type LlamaConfig } from "./config";
import { FormatError } from "./formats/format-error";
import { isGguf, readGgufCheckpoint, readGgufTokenizer } from "./formats/gguf";
import { readLlama2cCheckpoint } from "./formats/llama2c";
import { readSafetensorsCheckpoint } from "./formats/safetensors";
import { cachedHubPath } from "./hub/download";
import { isHubSpec } from "./hub/spec";
import { LlamaModel } from "./llama";
import { ENGINE_LIMIT, memoryLimitMessage, memoryNeed } from "./memory-fit";
import { readLlama2cTokenizer } from "./tokenizer/sentencepiece-bpe";
import { readTokenizerJson } from "./tokenizer/tokenizer-json";
import type { Tokenizer } from "./tokenizer/tokenizer";
import { loadWeights } from "./weights";

export interface LoadOptions {
  /**
   * Tokenizer: a llama2.c tokenizer.bin, a .gguf, a tokenizer.json or a folder holding one, or a downloaded
   * `hf:` name. Default: the GGUF's own, tokenizer.bin beside a llama2.c checkpoint, tokenizer.json (else
   * tokenizer.bin) inside a Hugging Face folder.
   */
  tokenizer?: string;
  /** Replace the checkpoint's activation (a zero-shot swap). */
  activation?: ActivationName;
  /** Cap the context (KV cache positions) below the checkpoint's. */
  contextLength?: number;
  /** Store W_down transposed, as the sparse (gather) FFN needs. */
  transposeDown?: boolean;
  /** A quantized model's transposed W_down: requantized to Q8_0 along its new rows (default) or kept as F16. */
  downDType?: "q8_0" | "f16";
  /** Store W_o transposed, as head-sparse attention needs. */
  transposeWo?: boolean;
  /** Store every linear but the classifier transposed (f32), as TEAL's column-gather products need. */
  transposeInputs?: boolean;
  /** Threads for the matrix products (default 1). */
  threads?: number;
  /** Extra engine bytes for modules that keep tensors of their own (predictors). */
  reserveBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

/** buildModel's options: loadModel's, with the BOS id a tokenizer would give (loadModel takes its tokenizer's). */
export interface BuildOptions extends Omit<LoadOptions, "tokenizer"> {
  /** The model's BOS id (model.bosId), which eval/ starts every window from; without it, model.bosId throws. */
  bosId?: number;
}

export interface LoadedModel {
  checkpoint: Checkpoint;
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** run.c ends a sample at BOS too: llama2.c checkpoints delimit stories with it. */
  stopAtBos: boolean;
}

/**
 * Read a checkpoint's header (no weights): a Hugging Face folder, a GGUF file, else a llama2.c file. An
 * `hf:OWNER/REPO[/FILE]` name is taken from the download cache (downloadFromHub fills it; the CLI does so).
 */
export function openCheckpoint(spec: string): Checkpoint {
  const file = isHubSpec(spec) ? cachedHubPath(spec, "model") : spec;
  if (!existsSync(file)) throw new DynactError(`${file}: no such file`);
  if (statSync(file).isDirectory()) {
    if (existsSync(path.join(file, "config.json"))) return readSafetensorsCheckpoint(file);
    throw new DynactError(`${file}: is a directory without config.json, expected a checkpoint file or a Hugging Face model folder`);
  }
  if (isGguf(file)) return readGgufCheckpoint(file);
  // The configuration of a Hugging Face model is in its folder's config.json, not in the weights file.
  if (/\.safetensors$/i.test(file)) {
    throw new DynactError(`${file}: a .safetensors file holds no model configuration: pass the folder with its config.json`);
  }
  try {
    return readLlama2cCheckpoint(file);
  } catch (e) {
    // Whatever is not GGUF is read as llama2.c (a tokenizer, a text, a predictor file): a header that describes no
    // model says what the file was taken for.
    if (!(e instanceof FormatError) || !LLAMA2C_HEADER_FIELDS.has(e.field)) throw e;
    throw new FormatError(file, e.field, `${e.message.slice(`${file}: ${e.field}: `.length)} (not a GGUF file, so read as a llama2.c checkpoint)`);
  }
}

// The header checks a file that is no model fails first (a model's own bad header fails later ones, or on its size).
const LLAMA2C_HEADER_FIELDS = new Set(["header", "version", "dim", "hiddenDim", "nLayers", "nHeads", "vocabSize", "seqLen"]);

/** A checkpoint's path (or `hf:` name), or one openCheckpoint already read (its header is not read again). */
export function loadModel(source: string | Checkpoint, opts: LoadOptions = {}): LoadedModel {
  const checkpoint = typeof source === "string" ? openCheckpoint(source) : source;
  // The options are checked against the header first: a bad context or activation fails before the tokenizer is read.
  const config = runConfig(checkpoint.config, opts);
  const tokenizer = loadTokenizer(checkpoint, opts.tokenizer);
  // The model carries its tokenizer's BOS: perplexity, calibration, TEAL and the predictor fitters start from it.
  const model = build(checkpoint, config, { ...opts, bosId: tokenizer.bosId });
  return { checkpoint, model, tokenizer, stopAtBos: checkpoint.format === "llama2c" };
}

/**
 * Size an engine for the checkpoint, stream its weights in and build the model (no tokenizer: pass `bosId`, the
 * tokenizer's BOS, if the model is to be scored or calibrated).
 */
export function buildModel(checkpoint: Checkpoint, opts: BuildOptions = {}): LlamaModel {
  return build(checkpoint, runConfig(checkpoint.config, opts), opts);
}

function build(checkpoint: Checkpoint, config: LlamaConfig, opts: BuildOptions): LlamaModel {
  const reserve = opts.reserveBytes ?? 0;
  // A NaN reserve reached WebAssembly.Memory as a TypeError; a negative one shrank the room for the model itself.
  if (!Number.isSafeInteger(reserve) || reserve < 0) throw new DynactError(`reserveBytes must be a non-negative integer, got ${reserve}`);
  if (opts.downDType !== undefined && opts.downDType !== "q8_0" && opts.downDType !== "f16") {
    throw new DynactError(`downDType must be q8_0 or f16, got ${JSON.stringify(opts.downDType)}`);
  }
  const bos = opts.bosId;
  if (bos !== undefined && (!Number.isInteger(bos) || bos < 0 || bos >= config.vocabSize)) {
    throw new DynactError(`BOS ${bos} outside the vocabulary of ${config.vocabSize}`);
  }
  const need = memoryNeed(checkpoint, config, opts, reserve).total;
  if (need > ENGINE_LIMIT) {
    // Refused before any allocation, naming what would fit (a quantization, a shorter context).
    throw new MemoryLimitError(memoryLimitMessage(checkpoint, config, opts, reserve));
  }
  const engine = Engine.create(need);
  engine.startThreads(opts.threads ?? 1);
  const weights = loadWeights(engine, checkpoint, {
    onProgress: opts.onProgress, transposeDown: opts.transposeDown, transposeWo: opts.transposeWo, downDType: opts.downDType,
    transposeInputs: opts.transposeInputs,
  });
  return new LlamaModel(engine, config, weights, { activation: ACTIVATION_MODULES[config.activation] }, bos);
}

/** A context length longer than the model's (LoadOptions.contextLength, the CLI's --ctx; the CLI exits 2 on it). */
export class ContextLengthError extends DynactError {
  constructor(readonly contextLength: number, readonly modelContext: number) {
    super(`--ctx ${contextLength} is longer than the model's context of ${modelContext}`);
  }
}

/**
 * The context (KV cache positions) a model runs at: `contextLength`, else the checkpoint's. The one check of a
 * requested context against the model's, made by loadModel and buildModel, and by whoever needs the context
 * before loading (the CLI's windows over a text) or builds no model from the request.
 */
export function runContextLength(c: LlamaConfig, contextLength: number | undefined): number {
  if (contextLength === undefined) return c.seqLen;
  if (!Number.isInteger(contextLength) || contextLength < 1) throw new DynactError(`context length ${contextLength} must be a positive integer`);
  if (contextLength > c.seqLen) throw new ContextLengthError(contextLength, c.seqLen);
  return contextLength;
}

function runConfig(c: LlamaConfig, opts: LoadOptions): LlamaConfig {
  const seqLen = runContextLength(c, opts.contextLength);
  // An unknown name loaded, then failed at the first forward() as a TypeError.
  const activation = opts.activation ?? c.activation;
  if (!ACTIVATIONS.includes(activation)) {
    throw new DynactError(`activation ${JSON.stringify(activation)} must be one of ${ACTIVATIONS.join(", ")}`);
  }
  return { ...c, seqLen, activation };
}

/** The tokenizer loadModel would use for this checkpoint (`explicit`: a -t file, folder or `hf:` name). */
export function loadTokenizer(ckpt: Checkpoint, explicit: string | undefined): Tokenizer {
  const besideOrIn = ckpt.format === "safetensors" ? "tokenizer.json or tokenizer.bin in" : "tokenizer.bin beside";
  const given = explicit !== undefined && isHubSpec(explicit) ? cachedHubPath(explicit, "tokenizer") : explicit;
  const file = given !== undefined ? (existsSync(given) && statSync(given).isDirectory() ? tokenizerIn(given) : given)
    : ckpt.format === "gguf" ? ckpt.path
    : ckpt.format === "safetensors" ? tokenizerIn(ckpt.path) : path.join(path.dirname(ckpt.path), "tokenizer.bin");
  if (!existsSync(file)) {
    throw new DynactError(explicit ? `${file}: no such tokenizer file`
      : `no tokenizer given and no ${besideOrIn} ${ckpt.path}: pass -t TOKENIZER`);
  }
  // Each reader is told the model's vocabulary, so that a tokenizer of another size is refused before it is built.
  const vocab = ckpt.config.vocabSize;
  const tok = isGguf(file) ? readGgufTokenizer(file, vocab)
    : file.endsWith(".json") ? readTokenizerJson(file, vocab) : readLlama2cTokenizer(file, vocab);
  if (tok.vocabSize !== ckpt.config.vocabSize) {
    throw new DynactError(
      `${file} has ${tok.vocabSize} pieces but ${ckpt.path} has a vocabulary of ${ckpt.config.vocabSize}: wrong tokenizer for this model`,
    );
  }
  return tok;
}

/** A folder's tokenizer: tokenizer.json (Hugging Face), else a llama2.c tokenizer.bin. */
function tokenizerIn(dir: string): string {
  const json = path.join(dir, "tokenizer.json");
  return existsSync(json) ? json : path.join(dir, "tokenizer.bin");
}
