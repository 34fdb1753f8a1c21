// Causal multi-head attention with grouped KV heads over B sequences of length T (rows n = b·T + t).
// q [B·T, H·hs], k and v [B·T, KV·hs] (already rotated), out [B·T, H·hs]; query head h reads KV head
// h / (H/KV). The probabilities are not stored: the forward pass keeps each row's log-sum-exp and the backward
// pass recomputes p = exp(s − lse), which costs one exp per score instead of B·H·T² floats per layer.
import type { Floats } from "./floats";

export interface AttentionShape {
  B: number;
  T: number;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/** Scores of query row (b, t, h) against keys 0..t, scaled: s[j] = q·k_j / sqrt(hs). */
function scores(s: Floats, q: Floats, k: Floats, qo: number, kBase: number, kvStride: number, t: number, hs: number): void {
  const scale = 1 / Math.sqrt(hs);
  for (let j = 0; j <= t; j++) {
    const ko = kBase + j * kvStride;
    let dot = 0;
    for (let i = 0; i < hs; i++) dot += q[qo + i] * k[ko + i];
    s[j] = dot * scale;
  }
}

/** `scratch` holds at least T values. */
export function attentionForward(
  out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats, a: AttentionShape, scratch: Floats,
): void {
  const { B, T, nHeads: H, nKvHeads: KV, headSize: hs } = a;
  const qStride = H * hs;
  const kvStride = KV * hs;
  const group = H / KV;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = b * T * kvStride + Math.floor(h / group) * hs;
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * qStride + h * hs;
        scores(scratch, q, k, qo, kBase, kvStride, t, hs);
        let max = -Infinity;
        for (let j = 0; j <= t; j++) if (scratch[j] > max) max = scratch[j];
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          const e = Math.exp(scratch[j] - max);
          scratch[j] = e;
          sum += e;
        }
        lse[(b * H + h) * T + t] = max + Math.log(sum);
        for (let i = 0; i < hs; i++) out[qo + i] = 0;
        for (let j = 0; j <= t; j++) {
          const p = scratch[j] / sum;
          const vo = kBase + j * kvStride;
          for (let i = 0; i < hs; i++) out[qo + i] += p * v[vo + i];
        }
      }
    }
  }
}

/**
 * With p = softmax(s) and o = Σ p_j v_j:  dv_j += p_j do,  ds_j = p_j (do·v_j − do·o),
 * dq += Σ_j ds_j k_j / sqrt(hs),  dk_j += ds_j q / sqrt(hs). Accumulates into dq, dk, dv.
 */
export function attentionBackward(
  dq: Floats, dk: Floats, dv: Floats, dout: Floats, out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats,
  a: AttentionShape, scratch: Floats,
): void {
  const { B, T, nHeads: H, nKvHeads: KV, headSize: hs } = a;
  const qStride = H * hs;
  const kvStride = KV * hs;
  const group = H / KV;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = b * T * kvStride + Math.floor(h / group) * hs;
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * qStride + h * hs;
        scores(scratch, q, k, qo, kBase, kvStride, t, hs);
        const m = lse[(b * H + h) * T + t];
        let doO = 0;
        for (let i = 0; i < hs; i++) doO += dout[qo + i] * out[qo + i];
        for (let j = 0; j <= t; j++) {
          const p = Math.exp(scratch[j] - m);
          const vo = kBase + j * kvStride;
          let doV = 0;
          for (let i = 0; i < hs; i++) {
            doV += dout[qo + i] * v[vo + i];
            dv[vo + i] += p * dout[qo + i];
          }
          const ds = p * (doV - doO) * scale;
          for (let i = 0; i < hs; i++) {
            dq[qo + i] += ds * k[vo + i];
            dk[vo + i] += ds * q[qo + i];
          }
        }
      }
    }
  }
}
