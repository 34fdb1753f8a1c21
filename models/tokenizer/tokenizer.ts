/** Text <-> token ids. Every tokenizer dynact loads (llama2.c `tokenizer.bin`, `tokenizer.json`) has this shape. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Ids of `text`; defaults: `bos: true`, `eos: false`. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /**
   * Bytes of `token` as run.c's decode(prev, token) renders it: leading space stripped after BOS, `<0xNN>` pieces
   * become the single byte.
   */
  pieceBytes(prev: number, token: number): Uint8Array;
  /**
   * Streaming-safe text of a run of generated ids that follow `prev` (UTF-8 decoded across pieces; invalid bytes
   * -> U+FFFD).
   */
  decode(ids: readonly number[], prev?: number): string;
}
