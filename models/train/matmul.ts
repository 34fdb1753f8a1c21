// A Linear over a batch of rows, with both gradients (llm.c style: backward accumulates into dx and dw).
// Shapes: x [N, I], w [O, I] (a Linear's [out, in], as checkpoints store it), y [N, O].
import type { Floats } from "./floats";

/** y[n, o] = Σ_i x[n, i] · w[o, i]. Four output rows per pass over x[n] share its loads. */
export function matmulForward(y: Floats, x: Floats, w: Floats, N: number, I: number, O: number): void {
  for (let n = 0; n < N; n++) {
    const xo = n * I;
    const yo = n * O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const w0 = o * I, w1 = w0 + I, w2 = w1 + I, w3 = w2 + I;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let i = 0; i < I; i++) {
        const xi = x[xo + i];
        s0 += xi * w[w0 + i];
        s1 += xi * w[w1 + i];
        s2 += xi * w[w2 + i];
        s3 += xi * w[w3 + i];
      }
      y[yo + o] = s0;
      y[yo + o + 1] = s1;
      y[yo + o + 2] = s2;
      y[yo + o + 3] = s3;
    }
    for (; o < O; o++) {
      const wo = o * I;
      let s = 0;
      for (let i = 0; i < I; i++) s += x[xo + i] * w[wo + i];
      y[yo + o] = s;
    }
  }
}

/** dx[n, :] += Σ_o dy[n, o] · w[o, :]  and  dw[o, :] += Σ_n dy[n, o] · x[n, :]. */
export function matmulBackward(
  dx: Floats, dw: Floats, dy: Floats, x: Floats, w: Floats, N: number, I: number, O: number,
): void {
  for (let n = 0; n < N; n++) {
    const xo = n * I;
    const yo = n * O;
    for (let o = 0; o < O; o++) {
      const d = dy[yo + o];
      if (d === 0) continue; // ReLU zeros whole rows of dy: skipping them is exact
      const wo = o * I;
      for (let i = 0; i < I; i++) dx[xo + i] += d * w[wo + i];
    }
  }
  for (let o = 0; o < O; o++) {
    const wo = o * I;
    for (let n = 0; n < N; n++) {
      const d = dy[n * O + o];
      if (d === 0) continue;
      const xo = n * I;
      for (let i = 0; i < I; i++) dw[wo + i] += d * x[xo + i];
    }
  }
}
