// The pieces of a predictor, each a forward and a hand-written backward over a minibatch of B rows (llm.c style:
// no tape). Every tensor feeds exactly one consumer, so backward passes write (=) their gradients rather than
// accumulate them. Plain TS, generic over f32 and f64: the f64 runs are what the finite-difference checks use,
// and the linear layer here is the reference for the engine's (engine-linear.ts).
export type Floats = Float32Array | Float64Array;

/** A linear layer's forward and backward; inp [B×I], w [O×I], bias [O], out [B×O]. */
export interface LinearOps {
  /** out[b,o] = Σ_i w[o,i]·inp[b,i] + bias[o] */
  forward(out: Floats, inp: Floats, w: Floats, bias: Floats, B: number, I: number, O: number): void;
  /** dw = doutᵀ·inp, dbias = Σ_b dout, and dinp = dout·w unless dinp is null (the data needs no gradient). */
  backward(dinp: Floats | null, dw: Floats, dbias: Floats, dout: Floats, inp: Floats, w: Floats, B: number, I: number, O: number): void;
}

export const TS_LINEAR: LinearOps = {
  forward(out, inp, w, bias, B, I, O) {
    for (let b = 0; b < B; b++) {
      for (let o = 0; o < O; o++) {
        let s = bias[o];
        for (let i = 0; i < I; i++) s += w[o * I + i] * inp[b * I + i];
        out[b * O + o] = s;
      }
    }
  },
  backward(dinp, dw, dbias, dout, inp, w, B, I, O) {
    dw.fill(0, 0, O * I);
    dbias.fill(0, 0, O);
    dinp?.fill(0, 0, B * I);
    for (let b = 0; b < B; b++) {
      for (let o = 0; o < O; o++) {
        const d = dout[b * O + o];
        dbias[o] += d;
        for (let i = 0; i < I; i++) dw[o * I + i] += d * inp[b * I + i];
        if (dinp) for (let i = 0; i < I; i++) dinp[b * I + i] += d * w[o * I + i];
      }
    }
  },
};

export function reluForward(out: Floats, inp: Floats, n: number): void {
  for (let i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

/** dinp = dout where inp > 0, else 0. */
export function reluBackward(dinp: Floats, dout: Floats, inp: Floats, n: number): void {
  for (let i = 0; i < n; i++) dinp[i] = inp[i] > 0 ? dout[i] : 0;
}

/** log(1 + e^x) without overflow. */
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/**
 * Σ_i of the weighted binary cross-entropy of logit s_i against label y_i (0 or 1), positives weighted pw:
 * pw·y·(−log σ(s)) + (1−y)·(−log(1−σ(s))) = pw·y·softplus(−s) + (1−y)·softplus(s). Summed in f64.
 */
export function bceForward(s: Floats, y: Uint8Array, pw: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += y[i] ? pw * softplus(-s[i]) : softplus(s[i]);
  return sum;
}

/** ds = scale · ∂/∂s of bceForward's terms: pw·(σ(s) − 1) for a positive, σ(s) for a negative. */
export function bceBackward(ds: Floats, s: Floats, y: Uint8Array, pw: number, scale: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const p = 1 / (1 + Math.exp(-s[i]));
    ds[i] = scale * (y[i] ? pw * (p - 1) : p);
  }
}
