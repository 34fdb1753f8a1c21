// The llama2.c tokenizer: a SentencePiece vocabulary (pieces with scores, byte fallback) read from tokenizer.bin,
// encoded and decoded exactly as llama2.c's run.c does it (build_tokenizer, encode, decode).
import { readFileSync } from "node:fs";
import { DynactError } from "../../engine/errors";
import { FormatError } from "../formats/format-error";
import { decodeStreamed } from "./stream-decoder";
import type { Tokenizer } from "./tokenizer";

const BOS = 1;
const EOS = 2;
// Byte fallback in run.c: byte b is token b + 3, the 256 byte pieces following <unk>, <s>, </s>.
const BYTE_FALLBACK_OFFSET = 3;
// run.c's merge loop starts from best_score = -1e10 and wants a strictly greater score, so a pair whose merged
// piece scores -1e10 or less never merges.
const MERGE_SCORE_FLOOR = -1e10;
// run.c groups at most 4 bytes into one codepoint before looking it up.
const MAX_CODEPOINT_BYTES = 4;

const UTF8 = new TextEncoder();

/** A llama2.c vocabulary. Build one with `readLlama2cTokenizer` or `parseLlama2cTokenizer`, which check the file. */
export class SentencePieceBpeTokenizer implements Tokenizer {
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly vocabSize: number;
  // run.c keeps pieces as C strings, so everything from a NUL byte on is invisible to lookup, merging and decode.
  private readonly cPieces: Uint8Array[];
  // Piece bytes as latin1 strings: one char per byte, so concatenating keys concatenates pieces.
  private readonly keys: string[];
  private readonly idOfKey = new Map<string, number>();

  constructor(
    /** The file name, for error messages. */
    readonly name: string,
    readonly maxTokenLength: number,
    /** Pieces exactly as stored in the file. */
    readonly pieces: readonly Uint8Array[],
    readonly scores: Float32Array,
  ) {
    this.vocabSize = pieces.length;
    this.cPieces = pieces.map((p) => {
      const nul = p.indexOf(0);
      return nul < 0 ? p : p.subarray(0, nul);
    });
    this.keys = this.cPieces.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString("latin1"));
    // Duplicate pieces: run.c's qsort + bsearch may find any of them; we take the lowest id.
    this.keys.forEach((key, id) => {
      if (!this.idOfKey.has(key)) this.idOfKey.set(key, id);
    });
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids: number[] = [];
    if (opts.bos ?? true) ids.push(BOS);
    // run.c reads the text as a C string: it ends at the first NUL.
    const nul = text.indexOf("\0");
    const bytes = UTF8.encode(nul < 0 ? text : text.slice(0, nul));
    if (bytes.length > 0) {
      ids.push(this.dummyPrefixId());
      this.pushCodepoints(bytes, ids);
    }
    // Like run.c, BOS takes part in merging (no real vocabulary has a piece that starts with BOS's piece).
    const merged = this.merge(ids);
    if (opts.eos ?? false) merged.push(EOS);
    return merged;
  }

  pieceBytes(prev: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new DynactError(`${this.name}: token id ${token} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    let piece = this.cPieces[token]!;
    // SentencePiece's decoder drops the dummy-prefix space of the first piece after BOS.
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const byte = scanByteToken(piece);
    if (byte < 0) return piece.slice();
    // The byte is returned as a C string, so <0x00> prints nothing.
    return byte === 0 ? new Uint8Array(0) : Uint8Array.of(byte);
  }

  decode(ids: readonly number[], prev = -1): string {
    return decodeStreamed(this, ids, prev);
  }

  private dummyPrefixId(): number {
    const id = this.idOfKey.get(" ");
    if (id === undefined) {
      throw new FormatError(this.name, "pieces", `no " " piece, which the encoder prepends to text as the dummy prefix`);
    }
    return id;
  }

  /** run.c's codepoint walk: a byte and up to 3 continuation bytes after it form one lookup, else byte fallback. */
  private pushCodepoints(bytes: Uint8Array, ids: number[]): void {
    for (let start = 0; start < bytes.length; ) {
      let end = start + 1;
      while (end < bytes.length && end - start < MAX_CODEPOINT_BYTES && (bytes[end]! & 0xc0) === 0x80) end++;
      const id = this.idOfKey.get(latin1(bytes, start, end));
      if (id !== undefined) {
        ids.push(id);
      } else {
        for (let i = start; i < end; i++) ids.push(this.byteFallbackId(bytes[i]!));
      }
      start = end;
    }
  }

  private byteFallbackId(byte: number): number {
    const id = byte + BYTE_FALLBACK_OFFSET;
    if (id >= this.vocabSize) {
      const hex = byte.toString(16).toUpperCase().padStart(2, "0");
      const detail = `byte 0x${hex} needs byte-fallback token ${id}, but there are only ${this.vocabSize} pieces`;
      throw new FormatError(this.name, "pieces", detail);
    }
    return id;
  }

  /**
   * run.c merges, again and again, the adjacent pair whose concatenation is the highest-scoring piece (the leftmost
   * such pair on equal scores) until no pair is a piece. Its rescan after every merge is quadratic; this gives the
   * same ids with a priority queue of candidate pairs over a linked list of tokens.
   */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    const token = Int32Array.from(ids); // -1 once merged into the token on its left
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // The piece that `left` and the token after it merge into, or -1. Natural text repeats its pairs a lot.
    const known = new Map<number, number>();
    const mergedAt = (left: number): number => {
      const right = next[left]!;
      if (right < 0) return -1;
      const pair = token[left]! * this.vocabSize + token[right]!;
      let merged = known.get(pair);
      if (merged === undefined) {
        merged = this.idOfKey.get(this.keys[token[left]!]! + this.keys[token[right]!]!) ?? -1;
        known.set(pair, merged);
      }
      return merged;
    };
    const queue = new PairQueue(n);
    const offer = (left: number): void => {
      const merged = mergedAt(left);
      if (merged >= 0 && this.scores[merged]! > MERGE_SCORE_FLOOR) queue.push(this.scores[merged]!, left);
    };
    for (let i = 0; i + 1 < n; i++) offer(i);

    while (queue.size > 0) {
      const left = queue.topLeft;
      const score = queue.topScore;
      queue.pop();
      // A candidate is stale once a merge has changed the pair at `left`. A stale one whose score still equals
      // the current pair's is harmless: that pair is queued with the same score and position anyway.
      if (token[left]! < 0) continue;
      const merged = mergedAt(left);
      if (merged < 0 || this.scores[merged] !== score) continue;
      const right = next[left]!;
      const after = next[right]!;
      token[left] = merged;
      token[right] = -1;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      if (prev[left]! >= 0) offer(prev[left]!);
      if (after >= 0) offer(left);
    }

    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(token[i]!); // token 0 is never a right one, so never merged away
    return out;
  }
}

/**
 * Max-heap of merge candidates: the score of the merged piece and the position of the pair's left token. Ties go
 * to the lower position; positions keep their order through merges, so that is run.c's left-to-right scan order.
 */
class PairQueue {
  private score: Float32Array;
  private left: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.score = new Float32Array(capacity);
    this.left = new Int32Array(capacity);
  }

  get topScore(): number {
    return this.score[0]!;
  }

  get topLeft(): number {
    return this.left[0]!;
  }

  push(score: number, left: number): void {
    if (this.size === this.score.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(score, left, parent)) break;
      this.score[i] = this.score[parent]!;
      this.left[i] = this.left[parent]!;
      i = parent;
    }
    this.score[i] = score;
    this.left[i] = left;
  }

  pop(): void {
    const n = --this.size;
    const score = this.score[n]!;
    const left = this.left[n]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(this.score[child + 1]!, this.left[child + 1]!, child)) child++;
      if (this.before(score, left, child)) break;
      this.score[i] = this.score[child]!;
      this.left[i] = this.left[child]!;
      i = child;
    }
    this.score[i] = score;
    this.left[i] = left;
  }

  /** Whether the candidate (score, left) comes out before the one at heap slot `slot`. */
  private before(score: number, left: number, slot: number): boolean {
    const other = this.score[slot]!;
    return score > other || (score === other && left < this.left[slot]!);
  }

  private grow(): void {
    const score = new Float32Array(this.score.length * 2);
    const left = new Int32Array(this.left.length * 2);
    score.set(this.score);
    left.set(this.left);
    this.score = score;
    this.left = left;
  }
}

/** Bytes start..end (at most 4) as a latin1 key. */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  switch (end - start) {
    case 1:
      return BYTE_KEYS[bytes[start]!]!;
    case 2:
      return String.fromCharCode(bytes[start]!, bytes[start + 1]!);
    case 3:
      return String.fromCharCode(bytes[start]!, bytes[start + 1]!, bytes[start + 2]!);
    default:
      return String.fromCharCode(bytes[start]!, bytes[start + 1]!, bytes[start + 2]!, bytes[start + 3]!);
  }
}
const BYTE_KEYS = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));

const C_SPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

function hexDigit(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * The byte of a `<0xNN>` piece, or -1. This is run.c's `sscanf(piece, "<0x%02hhX>", &b) == 1` as glibc scans it
 * (checked against glibc 2.36): after "<0x", whitespace is skipped, then at most two characters are read — an
 * optional sign, an optional "0x" prefix and hex digits all count towards the two — and the closing '>' is not
 * checked. So "<0xA", "<0x4F1" and "<0x-1" are byte tokens too (0x0A, 0x4F, 0xFF).
 */
function scanByteToken(p: Uint8Array): number {
  if (p[0] !== 0x3c || p[1] !== 0x30 || p[2] !== 0x78) return -1; // "<0x"
  let i = 3;
  while (C_SPACE.has(p[i]!)) i++;
  let width = 2;
  let negative = false;
  let digits = 0;
  let value = 0;
  if (p[i] === 0x2d || p[i] === 0x2b) {
    negative = p[i] === 0x2d;
    i++;
    width--;
  }
  if (width > 0 && p[i] === 0x30) {
    i++;
    width--;
    digits++;
    if (width > 0 && (p[i]! | 0x20) === 0x78) {
      i++;
      width--;
    }
  }
  for (let d = hexDigit(p[i]); width > 0 && d >= 0; d = hexDigit(p[++i])) {
    value = value * 16 + d;
    width--;
    digits++;
  }
  if (digits === 0) return -1;
  return (negative ? -value : value) & 0xff;
}

/**
 * Reads a llama2.c tokenizer.bin: int32 max_token_length, then up to the end f32 score, int32 length, piece bytes.
 * `vocabSize`, the vocabulary of the model it is for: more pieces than that are refused as soon as they appear (run.c
 * reads that many), not first held as millions of pieces — a file of 8-byte empty entries makes one per 8 bytes.
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, name: string, vocabSize?: number): SentencePieceBpeTokenizer {
  if (bytes.length < 4) {
    throw new FormatError(name, "max_token_length", `the file has ${bytes.length} bytes, too short for the header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) throw new FormatError(name, "max_token_length", `${maxTokenLength} is not positive`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (offset < bytes.length) {
    const field = `piece ${pieces.length}`;
    if (bytes.length - offset < 8) {
      throw new FormatError(name, field, `truncated: ${bytes.length - offset} bytes left, its score and length need 8`);
    }
    if (pieces.length === vocabSize) {
      throw new FormatError(name, field, `the file holds more pieces than the model's vocabulary of ${vocabSize}: wrong tokenizer for this model`);
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (!Number.isFinite(score)) throw new FormatError(name, `${field} score`, `${score} is not finite`);
    // run.c sizes its merge buffer from max_token_length, so a longer piece is as broken as a negative length.
    if (length < 0 || length > maxTokenLength) {
      throw new FormatError(name, `${field} length`, `${length} is outside 0..max_token_length (${maxTokenLength})`);
    }
    if (length > bytes.length - offset) {
      const detail = `${length} bytes, but only ${bytes.length - offset} are left (truncated file?)`;
      throw new FormatError(name, `${field} length`, detail);
    }
    // A copy, and a plain Uint8Array even when `bytes` is a Buffer (whose slice would share memory).
    pieces.push(new Uint8Array(bytes.subarray(offset, offset + length)));
    scores.push(score);
    offset += length;
  }
  if (pieces.length < 3) {
    throw new FormatError(name, "pieces", `${pieces.length} pieces; a llama2.c vocabulary starts with <unk>, <s>, </s>`);
  }
  return new SentencePieceBpeTokenizer(name, maxTokenLength, pieces, Float32Array.from(scores));
}

/** Reads and checks a llama2.c tokenizer.bin file (for a model of `vocabSize` tokens, when given). */
export function readLlama2cTokenizer(path: string, vocabSize?: number): SentencePieceBpeTokenizer {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "not found" : (err as Error).message;
    throw new DynactError(`tokenizer file ${path}: ${why}`);
  }
  return parseLlama2cTokenizer(bytes, path, vocabSize);
}
