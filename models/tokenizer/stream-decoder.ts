import type { Tokenizer } from "./tokenizer";

/**
 * Turns generated tokens into text one at a time. A character that byte fallback split over several tokens
 * comes out whole with the token that completes it, never as replacement characters in between.
 */
export class StreamDecoder {
  // ignoreBOM: a generated U+FEFF is text, not a byte-order mark to swallow.
  private readonly utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(private readonly tokenizer: Tokenizer) {}

  /** Text completed by `token` (which follows `prev`); bytes of an unfinished character wait for the next push. */
  push(prev: number, token: number): string {
    return this.utf8.decode(this.tokenizer.pieceBytes(prev, token), { stream: true });
  }

  /** Whatever is still buffered (an unfinished character becomes U+FFFD); the decoder can then start afresh. */
  flush(): string {
    return this.utf8.decode();
  }
}

/** Tokenizer.decode for any tokenizer: `ids` (following `prev`) pushed through a StreamDecoder, then flushed. */
export function decodeStreamed(tokenizer: Tokenizer, ids: readonly number[], prev = -1): string {
  const stream = new StreamDecoder(tokenizer);
  let text = "";
  for (const id of ids) {
    text += stream.push(prev, id);
    prev = id;
  }
  return text + stream.flush();
}
