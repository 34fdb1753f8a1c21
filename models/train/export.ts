// A trained model out through the checkpoint writers, its config (activation, ReLU after the norms) recorded
// so that loading it runs the same model: GGUF in dynact.* keys, llama2.c in a JSON sidecar.
import { writeGguf } from "../formats/gguf";
import { writeLlama2cCheckpoint } from "../formats/llama2c";
import { SentencePieceBpeTokenizer } from "../tokenizer/sentencepiece-bpe";
import type { Tokenizer } from "../tokenizer/tokenizer";
import type { Params } from "./params";

export type ExportFormat = "llama2c" | "gguf";

/** The format an output path implies: .gguf is GGUF, anything else llama2.c. */
export const formatOf = (path: string): ExportFormat => (path.toLowerCase().endsWith(".gguf") ? "gguf" : "llama2c");

/** Write f32 weights; a GGUF embeds the tokenizer when it is a SentencePiece one. */
export function exportModel(path: string, format: ExportFormat, params: Params, tokenizer?: Tokenizer): void {
  const tensor = (name: string) => params.tensorF32(name);
  if (format === "gguf") {
    const tok = tokenizer instanceof SentencePieceBpeTokenizer ? tokenizer : undefined;
    writeGguf(path, params.config, tensor, { dtype: "f32", tied: params.tied, tokenizer: tok });
  } else {
    writeLlama2cCheckpoint(path, params.config, tensor, { version: 0, tied: params.tied });
  }
}
