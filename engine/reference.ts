// Plain-TypeScript reference for every op: the oracle the property tests compare the kernels against.
// Written for clarity, not speed; accumulates in f64 so that it is the more exact side of a comparison.
import { isQuantized, type DType } from "./dtype";
import { dequantize, quantize, quantizeQ8_0 } from "./quant";

export function matvecRef(w: Float32Array, x: Float32Array, d: number, n: number): Float32Array {
  const out = new Float32Array(d);
  for (let r = 0; r < d; r++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += w[r * n + k] * x[k];
    out[r] = s;
  }
  return out;
}

/** matvec with w stored as `dtype`: dequantize w, and for q8_0/q4_0 round x through Q8_0 as the op does. */
export function matvecDTypeRef(dtype: DType, w: Uint8Array, x: Float32Array, d: number, n: number): Float32Array {
  const xs = isQuantized(dtype) ? dequantize("q8_0", quantizeQ8_0(x), n) : x;
  return matvecRef(dequantize(dtype, w, d * n), xs, d, n);
}

export function rmsnormRef(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => w[i] * v * scale);
}

/** cos/sin tables of the rotation angles pos·θ^(-2j/headSize), j < headSize/2, as llama2.c computes them in f32. */
export function ropeAnglesRef(pos: number, headSize: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headSize / 2;
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let j = 0; j < half; j++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headSize))));
    const angle = Math.fround(pos * freq);
    cos[j] = Math.cos(angle);
    sin[j] = Math.sin(angle);
  }
  return { cos, sin };
}

export function ropeRef(x: Float32Array, headSize: number, cos: Float32Array, sin: Float32Array): Float32Array {
  const out = x.slice();
  for (let h = 0; h < x.length / headSize; h++) {
    for (let j = 0; j < headSize / 2; j++) {
      const i = h * headSize + 2 * j;
      out[i] = x[i] * cos[j] - x[i + 1] * sin[j];
      out[i + 1] = x[i] * sin[j] + x[i + 1] * cos[j];
    }
  }
  return out;
}

export function softmaxRef(x: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  const e = Array.from(x, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (v) => v / sum);
}

export function siluRef(x: Float32Array): Float32Array {
  return x.map((v) => v / (1 + Math.exp(-v)));
}

export function reluRef(x: Float32Array): Float32Array {
  return x.map((v) => (v > 0 ? v : 0));
}

export function mulRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v * b[i]);
}

export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

export function argmaxRef(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Single-query GQA attention over positions 0..nPos-1 of caches laid out [pos][nKvHeads*headSize]. */
export function attentionRef(
  q: Float32Array, kCache: Float32Array, vCache: Float32Array,
  nHeads: number, nKvHeads: number, headSize: number, nPos: number,
): Float32Array {
  const kvDim = nKvHeads * headSize;
  const group = nHeads / nKvHeads;
  const out = new Float32Array(nHeads * headSize);
  for (let h = 0; h < nHeads; h++) {
    const g = Math.floor(h / group);
    const scores = new Float32Array(nPos);
    for (let t = 0; t < nPos; t++) {
      let s = 0;
      for (let i = 0; i < headSize; i++) s += q[h * headSize + i] * kCache[t * kvDim + g * headSize + i];
      scores[t] = s / Math.sqrt(headSize);
    }
    const p = softmaxRef(scores);
    for (let i = 0; i < headSize; i++) {
      let s = 0;
      for (let t = 0; t < nPos; t++) s += p[t] * vCache[t * kvDim + g * headSize + i];
      out[h * headSize + i] = s;
    }
  }
  return out;
}

export function relu2Ref(x: Float32Array): Float32Array {
  return x.map((v) => (v > 0 ? v * v : 0));
}

export function geluRef(x: Float32Array): Float32Array {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
}

/** out[k] = W[S[k], :] · x */
export function matvecRowsRef(w: Float32Array, x: Float32Array, n: number, idx: ArrayLike<number>): Float32Array {
  return Float32Array.from(idx, (r) => {
    let s = 0;
    for (let k = 0; k < n; k++) s += w[r * n + k] * x[k];
    return s;
  });
}

/** out = Σ_k a[k] · Wt[S[k], :] */
export function scatterAxpyRef(wt: Float32Array, a: ArrayLike<number>, idx: ArrayLike<number>, dim: number): Float32Array {
  const out = new Float64Array(dim);
  for (let k = 0; k < idx.length; k++) for (let j = 0; j < dim; j++) out[j] += a[k] * wt[idx[k] * dim + j];
  return Float32Array.from(out);
}

/** S = { i : scores[i] > eps }, ascending (strict: a score of exactly eps is dropped). */
export function selectThresholdRef(scores: ArrayLike<number>, eps: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < scores.length; i++) if (scores[i] > eps) out.push(i);
  return out;
}

/** The k largest (ties to the lowest id), ascending. */
export function selectTopkRef(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, Math.min(k, scores.length)).sort((a, b) => a - b);
}

/** matvecRows with w stored as `dtype` (f32, q8_0, q4_0): dequantized rows; x rounded through Q8_0 for quantized w. */
export function matvecRowsDTypeRef(dtype: DType, w: Uint8Array, x: Float32Array, d: number, n: number, idx: ArrayLike<number>): Float32Array {
  const xs = isQuantized(dtype) ? dequantize("q8_0", quantizeQ8_0(x), n) : x;
  return matvecRowsRef(dequantize(dtype, w, d * n), xs, n, idx);
}

/** scatterAxpy with Wt [h, dim] stored as `dtype` (f32, f16, q8_0 with blocks along dim): the dequantized rows. */
export function scatterAxpyDTypeRef(
  dtype: DType, wt: Uint8Array, a: ArrayLike<number>, idx: ArrayLike<number>, h: number, dim: number,
): Float32Array {
  return scatterAxpyRef(dequantize(dtype, wt, h * dim), a, idx, dim);
}

/**
 * W [rows, cols] stored as `from` -> Wᵀ [cols, rows] encoded as `to` along its new rows: what loadWeights does to
 * W_down for the column scatter (for from = q8_0, to = q8_0 a requantization: decode, transpose, re-block).
 */
export function transposeEncodeRef(from: DType, w: Uint8Array, rows: number, cols: number, to: DType): Uint8Array {
  const v = dequantize(from, w, rows * cols);
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = v[r * cols + c];
  return quantize(to, t);
}
