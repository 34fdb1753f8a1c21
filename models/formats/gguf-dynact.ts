// What llama.cpp's llama architecture cannot say about a model, in keys of our own: the MLP activation
// (`dynact.activation`, llama.cpp always runs SiLU), stage 2's ReLU after the norms (`dynact.relu_after_norm`),
// and Llama 3.1's RoPE scaling by its parameters (`dynact.rope.llama3.*`). llama.cpp keeps that scaling only as
// rope_freqs divisors, from which neither the parameters (for config.json) nor, exactly, the frequencies the
// Hugging Face model computes can be had back; the writer stores both. Written only when they differ from plain
// LLaMA, so SiLU files stay as before.
import { ACTIVATIONS, type ActivationName, type Llama3RopeScaling, type LlamaConfig } from "../config";
import { brief, FormatError } from "./format-error";
import { metaFloat, metaString, type GgufMetadata, type GgufValue } from "./gguf-metadata";

const ACTIVATION_KEY = "dynact.activation";
const RELU_AFTER_NORM_KEY = "dynact.relu_after_norm";
const LLAMA3 = "dynact.rope.llama3.";
const LLAMA3_KEYS = {
  factor: `${LLAMA3}factor`, lowFreqFactor: `${LLAMA3}low_freq_factor`, highFreqFactor: `${LLAMA3}high_freq_factor`,
  originalContext: `${LLAMA3}original_context_length`,
} as const;

export function readDynactKeys(m: GgufMetadata, file: string): Pick<LlamaConfig, "activation" | "reluAfterNorm" | "ropeScaling"> {
  const activation = metaString(m, ACTIVATION_KEY, file, "silu");
  if (!ACTIVATIONS.includes(activation as ActivationName)) {
    throw new FormatError(file, ACTIVATION_KEY, `${brief(activation)} is not one of ${ACTIVATIONS.join(", ")}`);
  }
  const ran = m.get(RELU_AFTER_NORM_KEY);
  if (ran !== undefined && ran.type !== "bool") throw new FormatError(file, RELU_AFTER_NORM_KEY, `is a ${ran.type}, expected a bool`);
  const llama3 = readLlama3Keys(m, file);
  return { activation: activation as ActivationName, ...(ran?.value === true ? { reluAfterNorm: true } : {}), ...(llama3 ? { ropeScaling: llama3 } : {}) };
}

/** The dynact.rope.llama3.* key of each ropeScaling field, for validateConfig's messages. */
export const LLAMA3_FILE_KEYS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(LLAMA3_KEYS).map(([k, key]) => [`ropeScaling.${k}`, key]));

// All four parameters or none (validateConfig checks their values).
function readLlama3Keys(m: GgufMetadata, file: string): Llama3RopeScaling | undefined {
  if (!Object.values(LLAMA3_KEYS).some((k) => m.has(k))) return undefined;
  return {
    type: "llama3",
    factor: metaFloat(m, LLAMA3_KEYS.factor, file),
    lowFreqFactor: metaFloat(m, LLAMA3_KEYS.lowFreqFactor, file),
    highFreqFactor: metaFloat(m, LLAMA3_KEYS.highFreqFactor, file),
    originalContext: metaFloat(m, LLAMA3_KEYS.originalContext, file),
  };
}

export function dynactMetadata(c: LlamaConfig): [string, GgufValue][] {
  const s = c.ropeScaling;
  return [
    ...(c.activation !== "silu" ? [[ACTIVATION_KEY, { type: "string", value: c.activation }] as [string, GgufValue]] : []),
    ...(c.reluAfterNorm ? [[RELU_AFTER_NORM_KEY, { type: "bool", value: true }] as [string, GgufValue]] : []),
    // f64: config.json's numbers are doubles, and these must give back its frequencies bit for bit.
    ...(s?.type === "llama3" ? [
      [LLAMA3_KEYS.factor, { type: "f64", value: s.factor }],
      [LLAMA3_KEYS.lowFreqFactor, { type: "f64", value: s.lowFreqFactor }],
      [LLAMA3_KEYS.highFreqFactor, { type: "f64", value: s.highFreqFactor }],
      [LLAMA3_KEYS.originalContext, { type: "f64", value: s.originalContext }],
    ] as [string, GgufValue][] : []),
  ];
}
