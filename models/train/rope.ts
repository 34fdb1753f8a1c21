// RoPE on adjacent pairs (x[2j], x[2j+1]) of every head, by the angles of models/rope.ts. Rows are the
// positions of sequences of length T laid end to end: row n is at position n mod T. The rotation is
// orthogonal, so the backward pass rotates the gradient back by the same angle.
import type { Floats } from "./floats";

export interface RopeAngles {
  /** [positions, headSize/2] */
  cos: Float32Array;
  sin: Float32Array;
}

/** Rotate rows of `nHeads` heads of `headSize` in place; `sign` -1 rotates back (the backward pass). */
function rotate(x: Floats, N: number, T: number, nHeads: number, headSize: number, a: RopeAngles, sign: 1 | -1): void {
  const half = headSize / 2;
  const width = nHeads * headSize;
  for (let n = 0; n < N; n++) {
    const ao = (n % T) * half;
    for (let h = 0; h < nHeads; h++) {
      const o = n * width + h * headSize;
      for (let j = 0; j < half; j++) {
        const c = a.cos[ao + j];
        const s = sign * a.sin[ao + j];
        const x0 = x[o + 2 * j];
        const x1 = x[o + 2 * j + 1];
        x[o + 2 * j] = x0 * c - x1 * s;
        x[o + 2 * j + 1] = x0 * s + x1 * c;
      }
    }
  }
}

export function ropeForward(x: Floats, N: number, T: number, nHeads: number, headSize: number, a: RopeAngles): void {
  rotate(x, N, T, nHeads, headSize, a, 1);
}

/** dx = Rᵀ dy, in place on the gradient. */
export function ropeBackward(dx: Floats, N: number, T: number, nHeads: number, headSize: number, a: RopeAngles): void {
  rotate(dx, N, T, nHeads, headSize, a, -1);
}
