// llama2.c's header has no field for the MLP activation or for stage 2's ReLU after the norms, so a model
// that is not plain SiLU LLaMA records them in a JSON sidecar beside the checkpoint: `MODEL.bin.json`, e.g.
// {"activation":"relu"} or {"activation":"relu","relu_after_norm":true}. Our loader reads it; run.c ignores it
// (and would run such a model as SiLU).
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { ACTIVATIONS, type ActivationName, type LlamaConfig } from "../config";
import { brief, fieldName, FormatError } from "./format-error";

export const sidecarPath = (checkpoint: string): string => `${checkpoint}.json`;

type SidecarFields = Pick<LlamaConfig, "activation" | "reluAfterNorm">;

/** The fields the sidecar of `checkpoint` sets (none when it has no sidecar). */
export function readSidecar(checkpoint: string): Partial<SidecarFields> {
  const file = sidecarPath(checkpoint);
  if (!existsSync(file)) return {};
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new FormatError(file, "json", (e as Error).message);
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) throw new FormatError(file, "json", "is not an object");
  const out: Partial<SidecarFields> = {};
  for (const [key, value] of Object.entries(j)) {
    if (key === "activation") {
      if (!ACTIVATIONS.includes(value as ActivationName)) throw new FormatError(file, key, `must be one of ${ACTIVATIONS.join(", ")}, got ${brief(value)}`);
      out.activation = value as ActivationName;
    } else if (key === "relu_after_norm") {
      if (typeof value !== "boolean") throw new FormatError(file, key, `must be true or false, got ${brief(value)}`);
      out.reluAfterNorm = value;
    } else {
      throw new FormatError(file, fieldName(key, "empty key"), "unknown key (expected activation, relu_after_norm)");
    }
  }
  return out;
}

/** Write the sidecar of a model that needs one; remove a stale one from a model that does not. */
export function writeSidecar(checkpoint: string, config: LlamaConfig): void {
  const file = sidecarPath(checkpoint);
  if (config.activation === "silu" && !config.reluAfterNorm) {
    rmSync(file, { force: true });
    return;
  }
  const j: Record<string, unknown> = { activation: config.activation };
  if (config.reluAfterNorm) j.relu_after_norm = true;
  writeFileSync(file, `${JSON.stringify(j)}\n`);
}
