// The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata, as our SentencePiece tokenizer, and back.
// GGUF keeps SentencePiece's text ("▁" for space, "<s>"/"</s>"); llama2.c's tokenizer.bin stores what its
// export.py made of it (space, "\n<s>\n"/"\n</s>\n"). We convert to the llama2.c form, so the same vocabulary
// gives byte-identical pieces and identical encodings from either file.
import { SentencePieceBpeTokenizer } from "../tokenizer/sentencepiece-bpe";
import { brief, FormatError } from "./format-error";
import { metaArray, metaInt, metaString, type GgufMetadata, type GgufValue } from "./gguf-metadata";

const SPACE_MARK = "\u2581";
// SentencePiece token types as llama.cpp stores them in tokenizer.ggml.token_type.
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const BYTE = 6;
// Our tokenizer (like run.c) has fixed special ids: <unk> 0, BOS 1, EOS 2, then the 256 byte pieces.
const BOS = 1;
const EOS = 2;
const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;

const UTF8 = new TextEncoder();
const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function ggufTokenizer(meta: GgufMetadata, file: string): SentencePieceBpeTokenizer {
  const model = metaString(meta, "tokenizer.ggml.model", file, "");
  if (model === "") throw new FormatError(file, "tokenizer.ggml.model", "missing: the file has no tokenizer; pass -t TOKENIZER");
  if (model === "gpt2") {
    throw new FormatError(file, "tokenizer.ggml.model", 'byte-level BPE ("gpt2") tokenizers are not supported yet; pass -t TOKENIZER');
  }
  if (model !== "llama") throw new FormatError(file, "tokenizer.ggml.model", `${brief(model)} tokenizers are not supported (only llama)`);
  const tokens = metaArray(meta, "tokenizer.ggml.tokens", "string", file) as string[] | undefined;
  if (!tokens) throw new FormatError(file, "tokenizer.ggml.tokens", "missing");
  const scores = metaArray(meta, "tokenizer.ggml.scores", "f32", file) as number[] | undefined;
  if (!scores) throw new FormatError(file, "tokenizer.ggml.scores", "missing (a SentencePiece BPE vocabulary merges by score)");
  if (scores.length !== tokens.length) {
    throw new FormatError(file, "tokenizer.ggml.scores", `${scores.length} scores for ${tokens.length} tokens`);
  }
  const bad = scores.findIndex((s) => !Number.isFinite(s));
  if (bad >= 0) throw new FormatError(file, "tokenizer.ggml.scores", `score ${bad} is ${scores[bad]}`); // merges compare them
  for (const [key, want] of [["tokenizer.ggml.bos_token_id", BOS], ["tokenizer.ggml.eos_token_id", EOS]] as const) {
    const id = metaInt(meta, key, file, want);
    if (id !== want) throw new FormatError(file, key, `is ${id}; only vocabularies with <unk> 0, <s> 1, </s> 2 are supported`);
  }
  if (tokens.length <= EOS) throw new FormatError(file, "tokenizer.ggml.tokens", `${tokens.length} tokens; <unk>, <s>, </s> are required`);
  const pieces = tokens.map((text, id) => {
    // Byte fallback finds byte b at id b + 3, so a byte piece anywhere else would decode to the wrong byte.
    const byte = BYTE_PIECE.exec(text);
    if (byte && parseInt(byte[1]!, 16) + 3 !== id) throw new FormatError(file, "tokenizer.ggml.tokens", `${text} at id ${id}, not ${parseInt(byte[1]!, 16) + 3}`);
    const piece = text.replaceAll(SPACE_MARK, " ");
    return UTF8.encode(id === BOS || id === EOS ? `\n${piece}\n` : piece);
  });
  const maxTokenLength = pieces.reduce((m, p) => Math.max(m, p.length), 1);
  return new SentencePieceBpeTokenizer(file, maxTokenLength, pieces, Float32Array.from(scores));
}

/** tokenizer.ggml.* metadata for a SentencePiece vocabulary (the reverse of ggufTokenizer). */
export function ggufTokenizerMetadata(tok: SentencePieceBpeTokenizer): [string, GgufValue][] {
  const tokens = tok.pieces.map((bytes, id) => {
    let text: string;
    try {
      text = UTF8_STRICT.decode(bytes);
    } catch {
      throw new FormatError(tok.name, `piece ${id}`, "is not valid UTF-8; GGUF stores pieces as text");
    }
    if ((id === BOS || id === EOS) && text.length >= 2 && text.startsWith("\n") && text.endsWith("\n")) text = text.slice(1, -1);
    return text.replaceAll(" ", SPACE_MARK);
  });
  const types = tokens.map((t, id) =>
    id === 0 ? UNKNOWN : id === BOS || id === EOS ? CONTROL : BYTE_PIECE.test(t) ? BYTE : NORMAL);
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  return [
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "array", value: { itemType: "string", items: tokens } }],
    ["tokenizer.ggml.scores", { type: "array", value: { itemType: "f32", items: Array.from(tok.scores) } }],
    ["tokenizer.ggml.token_type", { type: "array", value: { itemType: "i32", items: types } }],
    ["tokenizer.ggml.bos_token_id", u32(BOS)],
    ["tokenizer.ggml.eos_token_id", u32(EOS)],
    ["tokenizer.ggml.unknown_token_id", u32(0)],
  ];
}
