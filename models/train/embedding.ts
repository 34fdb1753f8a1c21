// Token embedding lookup: row n of x is row tokens[n] of the table [V, D]; its gradient scatters back.
import type { Floats } from "./floats";

export function embeddingForward(x: Floats, table: Floats, tokens: Int32Array, N: number, D: number): void {
  for (let n = 0; n < N; n++) {
    const src = tokens[n] * D;
    for (let i = 0; i < D; i++) x[n * D + i] = table[src + i];
  }
}

/** dtable[tokens[n]] += dx[n]. */
export function embeddingBackward(dtable: Floats, dx: Floats, tokens: Int32Array, N: number, D: number): void {
  for (let n = 0; n < N; n++) {
    const dst = tokens[n] * D;
    for (let i = 0; i < D; i++) dtable[dst + i] += dx[n * D + i];
  }
}
