// Hugging Face tokenizer.json (BPE models: LLaMA-2-style SentencePiece BPE with "▁" and byte fallback, and
// byte-level BPE as LLaMA-3 and SmolLM use) behind our Tokenizer interface. @huggingface/tokenizers does the
// encoding (normalizer, pre-tokenizer regex, added tokens, merges); we add BOS/EOS ourselves and render each
// piece to bytes, which streaming decode needs and the library's whole-sequence decode cannot give.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { DynactError } from "../../engine/errors";
import { brief, FormatError, isObject } from "../formats/format-error";
import { decodeStreamed } from "./stream-decoder";
import type { Tokenizer } from "./tokenizer";

const UTF8 = new TextEncoder();
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
// Names BOS and EOS go by when no tokenizer_config.json says: LLaMA-2, LLaMA-3, GPT-2-style (SmolLM).
const BOS_NAMES = ["<s>", "<|begin_of_text|>", "<|endoftext|>"];
const EOS_NAMES = ["</s>", "<|end_of_text|>", "<|endoftext|>"];

type Json = Record<string, unknown>;

/** How the tokenizer's decoder turns pieces back into bytes. */
interface PieceRendering {
  /** GPT-2's byte-to-unicode alphabet: each char of a piece stands for one byte. */
  byteLevel: boolean;
  /** The character that stands for a space ("▁"), if the decoder replaces one. */
  spaceMark?: string;
  /** `<0xNN>` pieces are the byte NN. */
  byteFallback: boolean;
  /** The decoder drops the leading space the normalizer added (shown after BOS only, as run.c does). */
  stripLeadingSpace: boolean;
}

export class TokenizerJson implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly hf: HfTokenizer;
  private readonly rendering: PieceRendering;
  private readonly addedIds: Set<number>;
  private readonly bytesOf: (Uint8Array | undefined)[] = [];
  /** The tokenizer.json it was built from (a GGUF writer reads the vocabulary, merges and pre-tokenizer here). */
  readonly source: Readonly<Record<string, unknown>>;

  /** `json`: the parsed tokenizer.json; `config`: the parsed tokenizer_config.json, or {}. */
  constructor(readonly name: string, json: unknown, config: unknown) {
    if (!isObject(json)) throw new FormatError(name, "json", "is not a JSON object");
    this.source = json;
    if (!isObject(config)) throw new FormatError(name, "tokenizer_config.json", "is not a JSON object");
    const model = json.model;
    if (!isObject(model) || model.type !== "BPE") {
      throw new FormatError(name, "model.type", `${brief(isObject(model) ? model.type : model)} is not supported (only BPE)`);
    }
    if (!isObject(model.vocab)) throw new FormatError(name, "model.vocab", "missing or not an object");
    if (!Array.isArray(model.merges)) throw new FormatError(name, "model.merges", "missing or not a list");
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added) || !added.every((t) => isObject(t) && typeof t.content === "string" && isId(t.id))) {
      throw new FormatError(name, "added_tokens", "is not a list of {id, content} tokens");
    }
    const vocabIds = Object.values(model.vocab);
    if (!vocabIds.every(isId)) throw new FormatError(name, "model.vocab", "ids must be non-negative integers");
    try {
      this.hf = new HfTokenizer({ ...json, added_tokens: added }, config);
    } catch (e) {
      throw new FormatError(name, "tokenizer", (e as Error).message);
    }
    this.addedIds = new Set((added as Json[]).map((t) => t.id as number));
    this.vocabSize = [...vocabIds, ...this.addedIds].reduce((m, id) => Math.max(m, id + 1), 0);
    this.rendering = pieceRendering(json.decoder, model.byte_fallback === true);
    const bos = this.specialId(config.bos_token, postProcessorBos(json.post_processor), BOS_NAMES);
    const eos = this.specialId(config.eos_token, undefined, EOS_NAMES);
    if (eos === undefined) {
      throw new FormatError(name, "eos_token", `no end-of-sequence token (tokenizer_config.json eos_token, or one of ${EOS_NAMES.join(" ")})`);
    }
    // GPT-2-style vocabularies have one <|endoftext|> for both.
    this.eosId = eos;
    this.bosId = bos ?? eos;
  }

  /** Pieces are GPT-2's byte-level alphabet (LLaMA-3, SmolLM, GPT-2), not SentencePiece text. */
  get byteLevel(): boolean {
    return this.rendering.byteLevel;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    // The library maps a piece missing from the vocabulary to unk_token's id, undefined when there is none.
    if (ids.some((id) => id === undefined)) throw new DynactError(`${this.name}: cannot encode ${brief(text)}: a piece is not in the vocabulary and there is no unk_token`);
    if (opts.bos ?? true) ids.unshift(this.bosId);
    if (opts.eos ?? false) ids.push(this.eosId);
    return ids;
  }

  pieceBytes(prev: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new DynactError(`${this.name}: token id ${token} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    let bytes = (this.bytesOf[token] ??= this.render(token));
    if (prev === this.bosId && this.rendering.stripLeadingSpace && bytes[0] === 0x20) bytes = bytes.subarray(1);
    return bytes.slice();
  }

  decode(ids: readonly number[], prev = -1): string {
    return decodeStreamed(this, ids, prev);
  }

  private render(id: number): Uint8Array {
    const piece = this.hf.id_to_token(id);
    if (piece === undefined) return new Uint8Array(0); // an id no token has (a gap in the vocabulary)
    // Added tokens are stored as their text, outside the byte-level alphabet.
    if (this.addedIds.has(id)) return UTF8.encode(piece);
    const r = this.rendering;
    if (r.byteLevel) {
      // A char outside the byte alphabet (rare in real vocabularies) stands for its own UTF-8, as HF decodes it.
      return Uint8Array.from(Array.from(piece).flatMap((ch) => {
        const b = UNICODE_TO_BYTE.get(ch);
        return b === undefined ? [...UTF8.encode(ch)] : [b];
      }));
    }
    const byte = r.byteFallback ? BYTE_PIECE.exec(piece) : null;
    if (byte) return Uint8Array.of(parseInt(byte[1]!, 16));
    return UTF8.encode(r.spaceMark ? piece.replaceAll(r.spaceMark, " ") : piece);
  }

  /** A special token's id: named in tokenizer_config.json, else given by the post-processor, else a known name. */
  private specialId(configured: unknown, fromPostProcessor: number | undefined, names: string[]): number | undefined {
    const content = isObject(configured) ? configured.content : configured;
    if (typeof content === "string") {
      const id = this.hf.token_to_id(content);
      if (id === undefined) throw new FormatError(this.name, "tokenizer_config.json", `special token ${brief(content)} is not in the vocabulary`);
      return id;
    }
    return fromPostProcessor ?? names.map((n) => this.hf.token_to_id(n)).find((id) => id !== undefined);
  }
}

/**
 * Reads tokenizer.json and, when present, the tokenizer_config.json beside it (BOS/EOS names). `vocabSize`, the
 * vocabulary of the model it is for: a file whose ids span another size is refused before the tokenizer is built
 * (the library's maps and lists of a vocabulary of 2^21 exhausted a 256 MB heap before the size was compared).
 */
export function readTokenizerJson(file: string, vocabSize?: number): TokenizerJson {
  const json = readJson(file);
  const ids = vocabSize === undefined ? undefined : idSpan(json);
  if (ids !== undefined && ids !== vocabSize) {
    throw new FormatError(file, "model.vocab", `ids span ${ids} tokens, but the model has a vocabulary of ${vocabSize}: wrong tokenizer for this model`);
  }
  const configFile = path.join(path.dirname(file), "tokenizer_config.json");
  return new TokenizerJson(file, json, existsSync(configFile) ? readJson(configFile) : {});
}

/** The vocabulary size TokenizerJson will give (largest id + 1), counted without building anything; undefined when malformed. */
function idSpan(json: unknown): number | undefined {
  const model = isObject(json) ? json.model : undefined;
  const added = isObject(json) ? json.added_tokens ?? [] : undefined;
  if (!isObject(model) || !isObject(model.vocab) || !Array.isArray(added)) return undefined;
  let span = 0;
  for (const key in model.vocab) {
    const id = model.vocab[key];
    if (!isId(id)) return undefined;
    span = Math.max(span, id + 1);
  }
  for (const t of added) {
    if (!isObject(t) || !isId(t.id)) return undefined;
    span = Math.max(span, t.id + 1);
  }
  return span;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new DynactError(`tokenizer file ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, "json", (e as Error).message);
  }
}

function pieceRendering(decoder: unknown, byteFallback: boolean): PieceRendering {
  const steps = !isObject(decoder) ? [] : decoder.type === "Sequence" && Array.isArray(decoder.decoders) ? decoder.decoders.filter(isObject) : [decoder];
  const r: PieceRendering = { byteLevel: false, byteFallback, stripLeadingSpace: false };
  for (const s of steps) {
    if (s.type === "ByteLevel") r.byteLevel = true;
    if (s.type === "ByteFallback") r.byteFallback = true;
    if (s.type === "Replace" && s.content === " " && isObject(s.pattern) && typeof s.pattern.String === "string") r.spaceMark = s.pattern.String;
    if (s.type === "Strip" && typeof s.start === "number" && s.start > 0 && s.content === " ") r.stripLeadingSpace = true;
    if (s.type === "Metaspace") {
      r.spaceMark = typeof s.replacement === "string" ? s.replacement : "\u2581";
      // Older files say add_prefix_space, newer ones prepend_scheme ("always" by default).
      r.stripLeadingSpace = s.prepend_scheme !== undefined ? s.prepend_scheme !== "never" : s.add_prefix_space !== false;
    }
  }
  return r;
}

/** The id of the first special token a TemplateProcessing post-processor puts before the text (LLaMA's BOS). */
function postProcessorBos(pp: unknown): number | undefined {
  if (isObject(pp) && pp.type === "Sequence" && Array.isArray(pp.processors)) {
    return pp.processors.map(postProcessorBos).find((id) => id !== undefined); // LLaMA-3: ByteLevel, then the template
  }
  if (!isObject(pp) || pp.type !== "TemplateProcessing" || !Array.isArray(pp.single) || !isObject(pp.special_tokens)) return undefined;
  const first = pp.single[0];
  const name = isObject(first) && isObject(first.SpecialToken) ? first.SpecialToken.id : undefined;
  const special = typeof name === "string" ? pp.special_tokens[name] : undefined;
  const ids = isObject(special) ? special.ids : undefined;
  return Array.isArray(ids) && ids.length === 1 && isId(ids[0]) ? ids[0] : undefined;
}

/** GPT-2's bytes_to_unicode, reversed: printable bytes stand for themselves, the others for U+0100 onwards. */
const UNICODE_TO_BYTE = (() => {
  const map = new Map<string, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCharCode(printable ? b : next++), b);
  }
  return map;
})();

const isId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
