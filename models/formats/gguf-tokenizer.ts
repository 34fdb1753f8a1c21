// The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata, as our SentencePiece tokenizer, and back.
// GGUF keeps SentencePiece's text ("▁" for space, "<s>"/"</s>"); llama2.c's tokenizer.bin stores what its
// export.py made of it (space, "\n<s>\n"/"\n</s>\n"). We convert to the llama2.c form, so the same vocabulary
// gives byte-identical pieces and identical encodings from either file.
// Byte-level BPE ("gpt2": LLaMA-3, SmolLM, Qwen2, GPT-2) becomes the tokenizer.json it stands for — vocabulary,
// merges, llama.cpp's pre-tokenizer regexes for tokenizer.ggml.pre as Split steps, CONTROL/USER_DEFINED tokens as
// added tokens — and runs through the same TokenizerJson as a Hugging Face folder's tokenizer.json.
import { SentencePieceBpeTokenizer } from "../tokenizer/sentencepiece-bpe";
import { TokenizerJson } from "../tokenizer/tokenizer-json";
import { brief, FormatError } from "./format-error";
import { metaArray, metaInt, metaString, type GgufMetadata, type GgufValue } from "./gguf-metadata";

/** The tokenizers a GGUF file can carry: SentencePiece ("llama") or byte-level BPE ("gpt2"). */
export type GgufTokenizer = SentencePieceBpeTokenizer | TokenizerJson;

const SPACE_MARK = "\u2581";
// Token types as llama.cpp stores them in tokenizer.ggml.token_type (UNDEFINED 0 … BYTE 6).
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;
const BYTE = 6;
// Our tokenizer (like run.c) has fixed special ids: <unk> 0, BOS 1, EOS 2, then the 256 byte pieces.
const BOS = 1;
const EOS = 2;
const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;

const UTF8 = new TextEncoder();
const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * `vocabSize`, the vocabulary of the model it is for: a token count other than that is refused before any piece is
 * built (each token becomes several objects; 2^21 tokens of a 40 MB file exhausted a 256 MB heap before the count
 * was compared).
 */
export function ggufTokenizer(meta: GgufMetadata, file: string, vocabSize?: number): GgufTokenizer {
  const model = metaString(meta, "tokenizer.ggml.model", file, "");
  if (model === "") throw new FormatError(file, "tokenizer.ggml.model", "missing: the file has no tokenizer; pass -t TOKENIZER");
  const count = (metaArray(meta, "tokenizer.ggml.tokens", "string", file) as string[] | undefined)?.length;
  if (vocabSize !== undefined && count !== undefined && count !== vocabSize) {
    throw new FormatError(file, "tokenizer.ggml.tokens", `${count} tokens, but the model has a vocabulary of ${vocabSize}: wrong tokenizer for this model`);
  }
  if (model === "gpt2") return byteLevelTokenizer(meta, file);
  if (model !== "llama") throw new FormatError(file, "tokenizer.ggml.model", `${brief(model)} tokenizers are not supported (only llama and gpt2)`);
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

/** tokenizer.ggml.* metadata for a SentencePiece or byte-level vocabulary (the reverse of ggufTokenizer). */
export function ggufTokenizerMetadata(tok: GgufTokenizer): [string, GgufValue][] {
  if (tok instanceof TokenizerJson) return byteLevelMetadata(tok);
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

// ---- byte-level BPE ("gpt2") ----

// llama.cpp's pre-tokenizers (llama-vocab.cpp, llm_tokenizer_bpe): regexes applied in turn, each splitting every
// piece into its matches and the text between them; then each piece is mapped to the byte alphabet and merged.
const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const LLAMA3_REGEX = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const QWEN2_REGEX = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

interface PreTokenizer {
  regexes: string[];
  /** A pre-token that is itself in the vocabulary is taken whole (LLaMA-3). */
  ignoreMerges: boolean;
}
const PRE: Record<string, PreTokenizer> = {};
const pre = (names: string[], regexes: string[], ignoreMerges = false) => names.forEach((n) => (PRE[n] = { regexes, ignoreMerges }));
pre(["default"], ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_REGEX, "\\p{N}+", "[0-9][0-9][0-9]"]);
pre(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"], [LLAMA3_REGEX], true);
pre(["dbrx", "smaug-bpe"], [LLAMA3_REGEX]);
pre(["gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "exaone4", "a.x-4.0", "mellum", "gigachat", "granite-docling"], [GPT2_REGEX]);
pre(["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"], ["\\p{N}", GPT2_REGEX]);
pre(["qwen2", "deepseek-r1-qwen", "kormo", "stablelm2", "megrez", "hunyuan"], [QWEN2_REGEX]);
pre(["falcon"], ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_REGEX, "[0-9][0-9][0-9]"]);

/** The tokenizer.json of a gpt2 vocabulary, through TokenizerJson (the same path as a Hugging Face folder). */
function byteLevelTokenizer(meta: GgufMetadata, file: string): TokenizerJson {
  // llama.cpp reads a file without tokenizer.ggml.pre (older conversions) with its default pre-tokenizer.
  const preName = metaString(meta, "tokenizer.ggml.pre", file, "default");
  const preTokenizer = Object.hasOwn(PRE, preName) ? PRE[preName]! : undefined;
  if (!preTokenizer) {
    throw new FormatError(file, "tokenizer.ggml.pre", `pre-tokenizer ${brief(preName)} is not supported (supported: ${Object.keys(PRE).join(", ")})`);
  }
  const stored = metaArray(meta, "tokenizer.ggml.tokens", "string", file) as string[] | undefined;
  if (!stored || stored.length === 0) throw new FormatError(file, "tokenizer.ggml.tokens", "missing or empty");
  const tokens = stored.map((text, id) => (text === "" ? `[EMPTY_${id}]` : text)); // as llama.cpp names an empty token
  const types = tokenTypes(meta, file, tokens.length);
  const vocab = new Map<string, number>();
  tokens.forEach((text, id) => {
    const seen = vocab.get(text);
    if (seen !== undefined) throw new FormatError(file, "tokenizer.ggml.tokens", `token ${id} ${brief(text)} repeats token ${seen}`);
    vocab.set(text, id);
  });
  const mergeItems = metaArray(meta, "tokenizer.ggml.merges", "string", file) as string[] | undefined;
  if (!mergeItems) throw new FormatError(file, "tokenizer.ggml.merges", "missing (a byte-level BPE vocabulary needs its merges)");
  const merges = mergeItems.map((m, i): [string, string] => {
    // llama.cpp splits at the first space after the first character.
    const at = m.indexOf(" ", 1);
    if (at < 0) throw new FormatError(file, "tokenizer.ggml.merges", `merge ${i} ${brief(m)} is not two tokens separated by a space`);
    const pair: [string, string] = [m.slice(0, at), m.slice(at + 1)];
    for (const part of [...pair, pair[0] + pair[1]]) {
      if (!vocab.has(part)) throw new FormatError(file, "tokenizer.ggml.merges", `merge ${i} ${brief(m)}: ${brief(part)} is not a token`);
    }
    return pair;
  });
  const count = tokens.length;
  const idKey = (key: string, fallback?: number): number | undefined => {
    if (!meta.has(key) && fallback === undefined) return undefined;
    const id = metaInt(meta, key, file, fallback);
    if (!Number.isInteger(id) || id < 0 || id >= count) throw new FormatError(file, key, `${id} is not a token id (0..${count - 1})`);
    return id;
  };
  const eos = idKey("tokenizer.ggml.eos_token_id");
  if (eos === undefined) throw new FormatError(file, "tokenizer.ggml.eos_token_id", "missing");
  // GPT-2-style vocabularies have one <|endoftext|> for both.
  const bos = idKey("tokenizer.ggml.bos_token_id", eos)!;
  const added = tokens.flatMap((content, id) => types[id] === CONTROL || types[id] === USER_DEFINED
    ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] === CONTROL }] : []);
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
  const json = {
    version: "1.0",
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        ...preTokenizer.regexes.map((r) => ({ type: "Split", pattern: { Regex: r }, behavior: "Isolated", invert: false })),
        byteLevel,
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: preTokenizer.ignoreMerges, vocab: Object.fromEntries(vocab), merges,
    },
  };
  // Token texts are unique, so naming BOS and EOS by their text names their ids.
  return new TokenizerJson(file, json, { bos_token: tokens[bos], eos_token: tokens[eos] });
}

/** tokenizer.ggml.token_type: one of llama.cpp's types per token (all NORMAL when absent, as llama.cpp reads it). */
function tokenTypes(meta: GgufMetadata, file: string, count: number): number[] {
  const types = metaArray(meta, "tokenizer.ggml.token_type", "i32", file) as number[] | undefined;
  if (!types) return new Array<number>(count).fill(NORMAL);
  if (types.length !== count) throw new FormatError(file, "tokenizer.ggml.token_type", `${types.length} types for ${count} tokens`);
  const bad = types.findIndex((t) => t < 0 || t > BYTE);
  if (bad >= 0) throw new FormatError(file, "tokenizer.ggml.token_type", `type ${types[bad]} of token ${bad} is not a llama.cpp token type (0..6)`);
  return types;
}

// tokenizer.json pre-tokenizers that are one of llama.cpp's, by the name it gives them (tokenizer.ggml.pre).
const HF_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
const HF_SPLITS: Record<string, { regexes: string[]; ignoreMerges: boolean }> = {
  "llama-bpe": { regexes: [LLAMA3_REGEX, LLAMA3_REGEX.replace(CONTRACTIONS, HF_CONTRACTIONS)], ignoreMerges: true },
  "smaug-bpe": { regexes: [LLAMA3_REGEX, LLAMA3_REGEX.replace(CONTRACTIONS, HF_CONTRACTIONS)], ignoreMerges: false },
  qwen2: { regexes: [QWEN2_REGEX, QWEN2_REGEX.replace(CONTRACTIONS, HF_CONTRACTIONS)], ignoreMerges: false },
};

/** llama.cpp's name for a byte-level tokenizer.json's pre-tokenizer, or a FormatError naming what does not fit. */
function llamaCppPreName(tok: TokenizerJson): string {
  const json = tok.source;
  const model = json.model as Record<string, unknown>;
  const unfit = (field: string, what: string) =>
    new FormatError(tok.name, field, `${what}: this tokenizer cannot be stored as a GGUF gpt2 tokenizer (pass -t with another tokenizer, or convert to safetensors)`);
  if (json.normalizer != null) throw unfit("normalizer", "a byte-level tokenizer with a normalizer");
  for (const key of ["byte_fallback", "continuing_subword_prefix", "end_of_word_suffix", "dropout"] as const) {
    if (model[key] != null && model[key] !== false) throw unfit(`model.${key}`, `is ${brief(model[key])}`);
  }
  const ignoreMerges = model.ignore_merges === true;
  const p = json.pre_tokenizer as Record<string, unknown> | null | undefined;
  const steps = p?.type === "Sequence" && Array.isArray(p.pretokenizers) ? (p.pretokenizers as Record<string, unknown>[]) : p ? [p] : [];
  const last = steps[steps.length - 1];
  const isByteLevel = (s: Record<string, unknown> | undefined, useRegex: boolean) =>
    s?.type === "ByteLevel" && s.add_prefix_space !== true && (s.use_regex ?? true) === useRegex;
  if (steps.length === 1 && isByteLevel(last, true) && !ignoreMerges) return "gpt-2";
  if (steps.length === 2 && isByteLevel(last, true) && !ignoreMerges && steps[0]!.type === "Digits" && steps[0]!.individual_digits === true) {
    return "smollm";
  }
  if (steps.length === 2 && isByteLevel(last, false) && steps[0]!.type === "Split") {
    const s = steps[0]!;
    const regex = (s.pattern as Record<string, unknown> | undefined)?.Regex;
    const behavior = typeof s.behavior === "string" ? s.behavior.toLowerCase() : "";
    const name = Object.keys(HF_SPLITS).find((n) => HF_SPLITS[n]!.regexes.includes(regex as string) && HF_SPLITS[n]!.ignoreMerges === ignoreMerges);
    if (name && behavior === "isolated" && s.invert !== true) return name;
  }
  throw unfit("pre_tokenizer", "is not one of llama.cpp's pre-tokenizers dynact knows (gpt-2, smollm, llama-bpe, smaug-bpe, qwen2)");
}

/** tokenizer.ggml.* metadata of a byte-level tokenizer.json (read back by byteLevelTokenizer). */
function byteLevelMetadata(tok: TokenizerJson): [string, GgufValue][] {
  if (!tok.byteLevel) {
    throw new FormatError(tok.name, "decoder", "a SentencePiece-style tokenizer.json cannot be stored in a GGUF yet (pass -t tokenizer.bin)");
  }
  const preName = llamaCppPreName(tok);
  const model = tok.source.model as Record<string, unknown>;
  const text = new Array<string | undefined>(tok.vocabSize);
  const types = new Array<number>(tok.vocabSize).fill(NORMAL);
  for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) text[id] = t;
  for (const t of (tok.source.added_tokens ?? []) as { id: number; content: string; special?: boolean }[]) {
    text[t.id] = t.content;
    types[t.id] = t.special ? CONTROL : USER_DEFINED;
  }
  const seen = new Map<string, number>();
  const tokens = text.map((t, id) => {
    if (t === undefined) {
      types[id] = UNUSED; // a gap in the ids, padded as llama.cpp's converter pads it
      t = `[PAD${id}]`;
    }
    if (seen.has(t)) throw new FormatError(tok.name, "model.vocab", `token ${id} ${brief(t)} repeats token ${seen.get(t)}; GGUF needs unique token texts`);
    seen.set(t, id);
    return t;
  });
  const merges = (model.merges as unknown[]).map((m, i) => {
    const at = typeof m === "string" ? m.indexOf(" ", 1) : -1;
    const pair = Array.isArray(m) ? m : at > 0 ? [(m as string).slice(0, at), (m as string).slice(at + 1)] : [];
    if (pair.length !== 2 || !pair.every((x) => typeof x === "string" && x !== "" && !x.includes(" "))) {
      throw new FormatError(tok.name, "model.merges", `merge ${i} ${brief(m)} is not two space-free tokens`);
    }
    return `${pair[0]} ${pair[1]}`;
  });
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  return [
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: preName }],
    ["tokenizer.ggml.tokens", { type: "array", value: { itemType: "string", items: tokens } }],
    ["tokenizer.ggml.token_type", { type: "array", value: { itemType: "i32", items: types } }],
    ["tokenizer.ggml.merges", { type: "array", value: { itemType: "string", items: merges } }],
    ["tokenizer.ggml.bos_token_id", u32(tok.bosId)],
    ["tokenizer.ggml.eos_token_id", u32(tok.eosId)],
  ];
}
