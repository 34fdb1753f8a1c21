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
