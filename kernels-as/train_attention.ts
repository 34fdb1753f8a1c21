// Causal self-attention of one (sequence, query head) for training, forward and backward; the plain-TS
// reference is models/train/attention.ts. Rows t = 0..T-1: q, out, dq, dout rows `qStride` f32 apart; k, v,
// dk, dv rows (this head's KV head) `kvStride` apart; lse [T] contiguous.
// Probabilities are not stored: the forward pass keeps each row's log-sum-exp and the backward pass recomputes
// p = exp(score − lse). Head vectors are short (8 floats in stories260K), so instead of one dot product per
// (query, key) pair every loop runs over 4 keys at once: K and V are first transposed into scratch as
// [hs][T4] (T4 = T rounded up to 4), scores and softmax are computed 4 keys per SIMD op (with a SIMD exp), and
// the backward pass accumulates dK and dV transposed, adding them back at the end. Keys past the query in the
// last group of 4 are masked to exactly 0.
// scratch: 4·hs·T4 + 2·T4 f32 (forward: 2·hs·T4 + T4): K and V transposed, dK and dV transposed, scores, ds.

// Cephes' expf on 4 lanes: 2^n · e^r with |r| <= ln2/2, degree-5 polynomial (within 2 ulp of Mathf.exp).
@inline function exp4(v: v128): v128 {
  const x0 = f32x4.min(f32x4.max(v, f32x4.splat(-87.33654)), f32x4.splat(88.72283));
  const n = f32x4.nearest(f32x4.mul(x0, f32x4.splat(1.44269504088896341)));
  let x = f32x4.sub(x0, f32x4.mul(n, f32x4.splat(0.693359375)));
  x = f32x4.sub(x, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, f32x4.mul(x, x)), x), f32x4.splat(1.0));
  const pow2n = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(y, pow2n);
}

@inline function horizontal(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Lanes j4..j4+3 that are keys of query t (j <= t). */
@inline function causal(j4: i32, t: i32): v128 {
  return i32x4.le_s(i32x4.add(i32x4.splat(j4), i32x4(0, 1, 2, 3)), i32x4.splat(t));
}

// dst[i·T4 + j] = src[j·stride + i] for j < T, i < hs.
function transposeIn(dst: usize, src: usize, T: i32, T4: i32, hs: i32, stride: i32): void {
  for (let j = 0; j < T; j++) {
    const row = src + (<usize>(j * stride) << 2);
    for (let i = 0; i < hs; i++) store<f32>(dst + (<usize>(i * T4 + j) << 2), load<f32>(row + (<usize>i << 2)));
  }
}

// s[j] = (q · k_j)/sqrt(hs) for the groups of 4 keys covering 0..t, −inf past t; returns the maximum.
@inline function scores(s: usize, qt: usize, kT: usize, t: i32, T4: i32, hs: i32, scale: f32): f32 {
  let mx = f32x4.splat(-Infinity);
  for (let j4 = 0; j4 <= t; j4 += 4) {
    let acc = f32x4.splat(0);
    for (let i = 0; i < hs; i++) {
      acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(qt + (<usize>i << 2))), v128.load(kT + (<usize>(i * T4 + j4) << 2))));
    }
    const sc = v128.bitselect(f32x4.mul(acc, f32x4.splat(scale)), f32x4.splat(-Infinity), causal(j4, t));
    v128.store(s + (<usize>j4 << 2), sc);
    mx = f32x4.max(mx, sc);
  }
  return Mathf.max(Mathf.max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)),
    Mathf.max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
}

// out[i] = Σ_{j<=t} p[j]·xT[i][j] for i < hs (p is 0 past t).
@inline function weighted(out: usize, p: usize, xT: usize, t: i32, T4: i32, hs: i32, accumulate: bool): void {
  for (let i = 0; i < hs; i++) {
    let acc = f32x4.splat(0);
    const row = xT + (<usize>(i * T4) << 2);
    for (let j4 = 0; j4 <= t; j4 += 4) {
      acc = f32x4.add(acc, f32x4.mul(v128.load(p + (<usize>j4 << 2)), v128.load(row + (<usize>j4 << 2))));
    }
    const o = out + (<usize>i << 2);
    store<f32>(o, accumulate ? load<f32>(o) + horizontal(acc) : horizontal(acc));
  }
}

export function attention_train_fwd_f32(
  out: usize, lse: usize, q: usize, k: usize, v: usize, scratch: usize, T: i32, hs: i32, qStride: i32, kvStride: i32,
): void {
  const T4 = (T + 3) & ~3;
  const kT = scratch;
  const vT = kT + (<usize>(hs * T4) << 2);
  const s = vT + (<usize>(hs * T4) << 2);
  transposeIn(kT, k, T, T4, hs, kvStride);
  transposeIn(vT, v, T, T4, hs, kvStride);
  const scale = <f32>1.0 / Mathf.sqrt(<f32>hs);
  for (let t = 0; t < T; t++) {
    const qt = q + (<usize>(t * qStride) << 2);
    const mx = scores(s, qt, kT, t, T4, hs, scale);
    let sum = f32x4.splat(0);
    for (let j4 = 0; j4 <= t; j4 += 4) {
      const sp = s + (<usize>j4 << 2);
      const e = v128.and(exp4(f32x4.sub(v128.load(sp), f32x4.splat(mx))), causal(j4, t));
      v128.store(sp, e);
      sum = f32x4.add(sum, e);
    }
    const total = horizontal(sum);
    store<f32>(lse + (<usize>t << 2), mx + Mathf.log(total));
    const inv = f32x4.splat(<f32>1.0 / total);
    for (let j4 = 0; j4 <= t; j4 += 4) v128.store(s + (<usize>j4 << 2), f32x4.mul(v128.load(s + (<usize>j4 << 2)), inv));
    weighted(out + (<usize>(t * qStride) << 2), s, vT, t, T4, hs, false);
  }
}

// dv_j += p_j·do_t,  ds_j = p_j·(do_t·v_j − do_t·o_t)/sqrt(hs),  dq_t += Σ_j ds_j·k_j,  dk_j += ds_j·q_t.
export function attention_train_bwd_f32(
  dq: usize, dk: usize, dv: usize, dout: usize, out: usize, lse: usize, q: usize, k: usize, v: usize, scratch: usize,
  T: i32, hs: i32, qStride: i32, kvStride: i32,
): void {
  const T4 = (T + 3) & ~3;
  const plane = <usize>(hs * T4) << 2;
  const kT = scratch, vT = kT + plane, dkT = vT + plane, dvT = dkT + plane;
  const s = dvT + plane; // scores, then p
  const ds = s + (<usize>T4 << 2);
  transposeIn(kT, k, T, T4, hs, kvStride);
  transposeIn(vT, v, T, T4, hs, kvStride);
  memory.fill(dkT, 0, 2 * plane);
  const scale = <f32>1.0 / Mathf.sqrt(<f32>hs);
  for (let t = 0; t < T; t++) {
    const qt = q + (<usize>(t * qStride) << 2);
    const dot_ = dout + (<usize>(t * qStride) << 2);
    scores(s, qt, kT, t, T4, hs, scale);
    const m = f32x4.splat(load<f32>(lse + (<usize>t << 2)));
    let doO: f32 = 0;
    const ot = out + (<usize>(t * qStride) << 2);
    for (let i = 0; i < hs; i++) doO += load<f32>(dot_ + (<usize>i << 2)) * load<f32>(ot + (<usize>i << 2));
    for (let j4 = 0; j4 <= t; j4 += 4) {
      const p = v128.and(exp4(f32x4.sub(v128.load(s + (<usize>j4 << 2)), m)), causal(j4, t));
      let doV = f32x4.splat(0);
      for (let i = 0; i < hs; i++) {
        doV = f32x4.add(doV, f32x4.mul(f32x4.splat(load<f32>(dot_ + (<usize>i << 2))), v128.load(vT + (<usize>(i * T4 + j4) << 2))));
      }
      v128.store(s + (<usize>j4 << 2), p);
      v128.store(ds + (<usize>j4 << 2), f32x4.mul(f32x4.mul(p, f32x4.sub(doV, f32x4.splat(doO))), f32x4.splat(scale)));
    }
    weighted(dq + (<usize>(t * qStride) << 2), ds, kT, t, T4, hs, true);
    for (let i = 0; i < hs; i++) {
      const qi = f32x4.splat(load<f32>(qt + (<usize>i << 2)));
      const di = f32x4.splat(load<f32>(dot_ + (<usize>i << 2)));
      const kRow = dkT + (<usize>(i * T4) << 2);
      const vRow = dvT + (<usize>(i * T4) << 2);
      for (let j4 = 0; j4 <= t; j4 += 4) {
        const o = <usize>j4 << 2;
        v128.store(kRow + o, f32x4.add(v128.load(kRow + o), f32x4.mul(v128.load(ds + o), qi)));
        v128.store(vRow + o, f32x4.add(v128.load(vRow + o), f32x4.mul(v128.load(s + o), di)));
      }
    }
  }
  for (let j = 0; j < T; j++) {
    const kr = dk + (<usize>(j * kvStride) << 2);
    const vr = dv + (<usize>(j * kvStride) << 2);
    for (let i = 0; i < hs; i++) {
      const o = <usize>i << 2;
      store<f32>(kr + o, load<f32>(kr + o) + load<f32>(dkT + (<usize>(i * T4 + j) << 2)));
      store<f32>(vr + o, load<f32>(vr + o) + load<f32>(dvT + (<usize>(i * T4 + j) << 2)));
    }
  }
}
