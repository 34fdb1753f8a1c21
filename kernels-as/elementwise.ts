// Elementwise kernels over n f32. out may alias either input.

export function silu_f32(out: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(x + off);
    store<f32>(out + off, v / (<f32>1.0 + Mathf.exp(-v)));
  }
}

export function relu_f32(out: usize, x: usize, n: i32): void {
  const zero = f32x4.splat(0);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.max(v128.load(x + off), zero));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(x + off);
    store<f32>(out + off, v > 0 ? v : <f32>0);
  }
}

export function mul_f32(out: usize, a: usize, b: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.mul(v128.load(a + off), v128.load(b + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, load<f32>(a + off) * load<f32>(b + off));
  }
}

export function add_f32(out: usize, a: usize, b: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.add(v128.load(a + off), v128.load(b + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, load<f32>(a + off) + load<f32>(b + off));
  }
}

// Squared ReLU (Primer, ProSparse's relu²): max(x, 0)².
export function relu2_f32(out: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(x + off);
    store<f32>(out + off, v > 0 ? v * v : <f32>0);
  }
}

// GELU, tanh approximation (as GPT-2 and most GELU LLaMA variants compute it).
export function gelu_f32(out: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(x + off);
    const u = <f32>0.7978845608028654 * (v + <f32>0.044715 * v * v * v);
    // tanh(u) = 1 - 2/(exp(2u)+1), stable for large |u|
    const t = <f32>1 - <f32>2 / (Mathf.exp(<f32>2 * u) + <f32>1);
    store<f32>(out + off, <f32>0.5 * v * (<f32>1 + t));
  }
}

// |x| ⊙ c (c may be 0 for plain |x|): neuron scores for threshold gates.
export function abs_mul_f32(out: usize, x: usize, c: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  if (c == 0) {
    for (; i < n4; i += 4) {
      const off = <usize>i << 2;
      v128.store(out + off, f32x4.abs(v128.load(x + off)));
    }
    for (; i < n; i++) store<f32>(out + (<usize>i << 2), Mathf.abs(load<f32>(x + (<usize>i << 2))));
    return;
  }
  for (; i < n4; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.mul(f32x4.abs(v128.load(x + off)), v128.load(c + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, Mathf.abs(load<f32>(x + off)) * load<f32>(c + off));
  }
}

// x_i = 0 where |x_i| <= t (TEAL's input-side magnitude sparsity; keeps |x_i| > t, as the threshold gates), in place.
export function sparsify_f32(x: usize, n: i32, t: f32): void {
  const tv = f32x4.splat(t);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const p = x + (<usize>i << 2);
    const v = v128.load(p);
    v128.store(p, v128.and(v, f32x4.gt(f32x4.abs(v), tv)));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    if (!(Mathf.abs(load<f32>(p)) > t)) store<f32>(p, 0);
  }
}
