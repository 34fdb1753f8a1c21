// A llama2.c vocabulary as the tokenizer.json transformers' LlamaConverter writes for it (the form of
// meta-llama/Llama-2-7b-hf): a BPE model with byte fallback whose merges are every split of every piece into two
// pieces, ordered by the merged piece's score (highest first; ties keep vocabulary order), plus the normalizer
// that prepends "▁" and turns spaces into "▁", and the decoder that undoes both.
import type { SentencePieceBpeTokenizer } from "../models/tokenizer/sentencepiece-bpe";

const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true }); // piece 30143 is U+FEFF

/** HF's text of piece `id`: "▁" for space, BOS/EOS without the newlines llama2.c's export.py put around them. */
function hfPiece(tok: SentencePieceBpeTokenizer, id: number): string {
  const text = UTF8.decode(tok.pieces[id]);
  return (id === 1 || id === 2 ? text.trim() : text).replaceAll(" ", "\u2581");
}

export function sentencePieceTokenizerJson(tok: SentencePieceBpeTokenizer): { json: object; config: object } {
  const pieces = Array.from({ length: tok.vocabSize }, (_, id) => hfPiece(tok, id));
  // A Map: pieces such as "constructor" and "toString" would find Object.prototype's members in an object.
  const vocab = new Map<string, number>();
  pieces.forEach((p, id) => vocab.has(p) || vocab.set(p, id));
  // SentencePieceExtractor.extract: per piece its splits (ordered by left id, then right id), then a stable sort
  // of all of them by score. Pieces are split by code point, as Python slices strings.
  const merges: { left: string; right: string; score: number }[] = [];
  pieces.forEach((piece, id) => {
    const chars = Array.from(piece);
    const local: { left: string; right: string; score: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join("");
      const right = chars.slice(i).join("");
      if (vocab.has(left) && vocab.has(right)) local.push({ left, right, score: tok.scores[id]! });
    }
    local.sort((a, b) => vocab.get(a.left)! - vocab.get(b.left)! || vocab.get(a.right)! - vocab.get(b.right)!);
    merges.push(...local);
  });
  merges.sort((a, b) => b.score - a.score);
  const special = (id: number) => ({
    id, content: pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0), special(1), special(2)],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: Object.fromEntries(vocab), merges: merges.map((m) => [m.left, m.right]),
    },
  };
  const config = { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, add_eos_token: false };
  return { json, config };
}
