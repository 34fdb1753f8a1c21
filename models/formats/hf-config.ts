// Hugging Face `config.json` of a LlamaForCausalLM, to and from our LlamaConfig. Anything that would change the
// math and that we do not implement (biases, partial heads, other RoPE scalings) is refused, never ignored.
import { readFileSync } from "node:fs";
import { validateConfig, type ActivationName, type Llama3RopeScaling, type LlamaConfig } from "../config";
import { brief, FormatError, isObject, withFileKeys } from "./format-error";

export interface HfLlamaConfig {
  config: LlamaConfig;
  /** tie_word_embeddings: lm_head shares the embedding. */
  tied: boolean;
}

export type HfDType = "f32" | "f16" | "bf16";
const TORCH_DTYPE: Record<HfDType, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

// config.json keys of LlamaConfig's fields, for validateConfig's messages.
const HF_KEYS: Readonly<Record<string, string>> = {
  dim: "hidden_size", hiddenDim: "intermediate_size", nLayers: "num_hidden_layers", nHeads: "num_attention_heads",
  nKvHeads: "num_key_value_heads", vocabSize: "vocab_size", seqLen: "max_position_embeddings", ropeTheta: "rope_theta",
  normEps: "rms_norm_eps",
};

// hidden_act names (transformers' ACT2FN) we run exactly.
const HF_ACTIVATIONS: Readonly<Record<string, ActivationName>> = { silu: "silu", swish: "silu", relu: "relu" };

export function readHfConfig(file: string): HfLlamaConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new FormatError(file, "file", (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, "json", (e as Error).message);
  }
  return parseHfConfig(json, file);
}

export function parseHfConfig(json: unknown, file: string): HfLlamaConfig {
  if (!isObject(json)) throw new FormatError(file, "json", "is not a JSON object");
  const j = json;
  const archs = j.architectures;
  if (archs !== undefined) {
    if (!Array.isArray(archs)) throw new FormatError(file, "architectures", `${brief(archs)} is not a list`);
    if (!archs.includes("LlamaForCausalLM")) {
      throw new FormatError(file, "architectures", `${brief(archs)} is not supported (only LlamaForCausalLM)`);
    }
  } else if (j.model_type !== "llama") {
    throw new FormatError(file, "model_type", `${brief(j.model_type)} is not supported (only llama)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v)) throw new FormatError(file, key, v === undefined ? "missing" : `${brief(v)} is not an integer`);
    return v;
  };
  const num = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== "number") throw new FormatError(file, key, v === undefined ? "missing" : `${brief(v)} is not a number`);
    return v;
  };
  const act = j.hidden_act ?? "silu";
  const activation = typeof act === "string" && Object.hasOwn(HF_ACTIVATIONS, act) ? HF_ACTIVATIONS[act] : undefined;
  if (!activation) throw new FormatError(file, "hidden_act", `${brief(act)} is not supported (silu, relu)`);
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (j[key] === true) throw new FormatError(file, key, "biases are not supported");
  }
  // transformers 5 saves RoPE as rope_parameters {rope_type, rope_theta, …scaling fields}, without the top-level
  // rope_theta and rope_scaling; it reads a (non-empty) rope_scaling first, and rope_theta inside wins.
  const legacy = isObject(j.rope_scaling) && Object.keys(j.rope_scaling).length > 0;
  const ropeKey = !legacy && isObject(j.rope_parameters) ? "rope_parameters" : "rope_scaling";
  const rope = j[ropeKey];
  const thetaKey = isObject(rope) && rope.rope_theta !== undefined ? `${ropeKey}.rope_theta` : "rope_theta";
  const theta = thetaKey === "rope_theta" ? j.rope_theta ?? 10000 : (rope as Record<string, unknown>).rope_theta;
  if (typeof theta !== "number") throw new FormatError(file, thetaKey, `${brief(theta)} is not a number`);
  const nHeads = int("num_attention_heads");
  const config: LlamaConfig = {
    dim: int("hidden_size"),
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: int("num_key_value_heads", nHeads),
    vocabSize: int("vocab_size"),
    seqLen: int("max_position_embeddings"),
    ropeTheta: theta,
    normEps: num("rms_norm_eps"),
    activation,
  };
  const scaling = ropeScaling(rope, ropeKey, file);
  if (scaling) config.ropeScaling = scaling;
  withFileKeys(file, { ...HF_KEYS, ...ropeKeys(ropeKey) }, () => validateConfig(config, file));
  if (j.head_dim !== undefined && j.head_dim !== null) {
    const headDim = int("head_dim");
    if (headDim !== config.dim / nHeads) {
      throw new FormatError(file, "head_dim", `${headDim} differs from hidden_size / num_attention_heads = ${config.dim / nHeads}`);
    }
  }
  // transformers' RoPE setup rotates only this fraction of each head when it is set; we rotate all of it.
  const partial = j.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new FormatError(file, "partial_rotary_factor", `${brief(partial)} is not supported (RoPE over whole heads only)`);
  }
  const tied = j.tie_word_embeddings ?? false;
  if (typeof tied !== "boolean") throw new FormatError(file, "tie_word_embeddings", `${brief(tied)} is not a boolean`);
  return { config, tied };
}

// config.json's names of the llama3 parameters under `key`, for validateConfig's messages.
const ropeKeys = (key: string): Record<string, string> => ({
  "ropeScaling.factor": `${key}.factor`, "ropeScaling.lowFreqFactor": `${key}.low_freq_factor`,
  "ropeScaling.highFreqFactor": `${key}.high_freq_factor`, "ropeScaling.originalContext": `${key}.original_max_position_embeddings`,
});

function ropeScaling(v: unknown, key: "rope_scaling" | "rope_parameters", file: string): Llama3RopeScaling | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new FormatError(file, key, `${brief(v)} is not an object`);
  // transformers renamed "type" to "rope_type"; rope_parameters without one is "default".
  const type = v.rope_type ?? v.type ?? (key === "rope_parameters" ? "default" : undefined);
  if (type === "default") return undefined;
  if (type !== "llama3") throw new FormatError(file, key, `type ${brief(type)} is not supported (only llama3)`);
  // Only types here: validateConfig checks the values, naming these keys (ropeKeys).
  const number = (field: string): number => {
    const x = v[field];
    if (typeof x !== "number") throw new FormatError(file, `${key}.${field}`, `${brief(x)} is not a number`);
    return x;
  };
  const s: Llama3RopeScaling = {
    type: "llama3",
    factor: number("factor"),
    lowFreqFactor: number("low_freq_factor"),
    highFreqFactor: number("high_freq_factor"),
    originalContext: number("original_max_position_embeddings"),
  };
  return s;
}

export interface HfWriteOptions {
  tied: boolean;
  dtype: HfDType;
  /** The tokenizer's BOS and EOS ids, for config.json's bos_token_id / eos_token_id (absent: not written). */
  specialIds?: { bos: number; eos: number };
}

/** The config.json transformers writes for this model. */
export function hfConfigJson(config: LlamaConfig, opts: HfWriteOptions, file: string): Record<string, unknown> {
  const act = Object.keys(HF_ACTIVATIONS).find((k) => HF_ACTIVATIONS[k] === config.activation);
  if (!act) throw new FormatError(file, "activation", `${config.activation} has no Hugging Face hidden_act we read back`);
  if (config.reluAfterNorm) throw new FormatError(file, "reluAfterNorm", "transformers' LlamaForCausalLM has no ReLU after the norms");
  // llama.cpp's divisors do not give back the llama3 parameters config.json holds.
  const s = config.ropeScaling;
  if (s?.type === "divisors") {
    throw new FormatError(file, "rope_scaling", "the model's RoPE scaling is llama.cpp's rope_freqs divisors, which config.json cannot hold (convert to GGUF instead)");
  }
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: config.dim,
    intermediate_size: config.hiddenDim,
    num_hidden_layers: config.nLayers,
    num_attention_heads: config.nHeads,
    num_key_value_heads: config.nKvHeads,
    head_dim: config.dim / config.nHeads,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.seqLen,
    rms_norm_eps: config.normEps,
    rope_theta: config.ropeTheta,
    rope_scaling: s ? { rope_type: "llama3", factor: s.factor, low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalContext } : null,
    hidden_act: act,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: opts.tied,
    // Only when known: a wrong id written out is worse than transformers' defaults (1 and 2) for an absent one.
    ...(opts.specialIds ? { bos_token_id: opts.specialIds.bos, eos_token_id: opts.specialIds.eos } : {}),
    torch_dtype: TORCH_DTYPE[opts.dtype],
  };
}
