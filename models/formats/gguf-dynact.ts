// What llama.cpp's llama architecture cannot say about a model, in keys of our own: the MLP activation
// (`dynact.activation`, llama.cpp always runs SiLU) and stage 2's ReLU after the norms
// (`dynact.relu_after_norm`). Written only when they differ from plain LLaMA, so SiLU files stay as before.
import { ACTIVATIONS, type ActivationName, type LlamaConfig } from "../config";
import { brief, FormatError } from "./format-error";
import { metaString, type GgufMetadata, type GgufValue } from "./gguf-metadata";

const ACTIVATION_KEY = "dynact.activation";
const RELU_AFTER_NORM_KEY = "dynact.relu_after_norm";

export function readDynactKeys(m: GgufMetadata, file: string): Pick<LlamaConfig, "activation" | "reluAfterNorm"> {
  const activation = metaString(m, ACTIVATION_KEY, file, "silu");
  if (!ACTIVATIONS.includes(activation as ActivationName)) {
    throw new FormatError(file, ACTIVATION_KEY, `${brief(activation)} is not one of ${ACTIVATIONS.join(", ")}`);
  }
  const ran = m.get(RELU_AFTER_NORM_KEY);
  if (ran !== undefined && ran.type !== "bool") throw new FormatError(file, RELU_AFTER_NORM_KEY, `is a ${ran.type}, expected a bool`);
  return { activation: activation as ActivationName, ...(ran?.value === true ? { reluAfterNorm: true } : {}) };
}

export function dynactMetadata(c: LlamaConfig): [string, GgufValue][] {
  return [
    ...(c.activation !== "silu" ? [[ACTIVATION_KEY, { type: "string", value: c.activation }] as [string, GgufValue]] : []),
    ...(c.reluAfterNorm ? [[RELU_AFTER_NORM_KEY, { type: "bool", value: true }] as [string, GgufValue]] : []),
  ];
}
