// Small SIMD helpers shared by the kernel families. Everything here is inlined.

// Horizontal sum in a fixed lane order so every caller reduces identically.
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Dot product of n f32 at a and b: two vector accumulators over 8-float steps, one 4-float step, scalar tail.
// The matvec kernel reproduces this exact order for every row, so results do not depend on row blocking.
@inline export function dot(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  const n8 = n & ~7;
  let k = 0;
  for (; k < n8; k += 8) {
    const off = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + off), v128.load(b + off)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + off, 16), v128.load(b + off, 16)));
  }
  if (k + 4 <= n) {
    const off = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + off), v128.load(b + off)));
    k += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; k < n; k++) {
    const off = <usize>k << 2;
    s += load<f32>(a + off) * load<f32>(b + off);
  }
  return s;
}

// y[0..n) += a * x[0..n)
@inline export function axpy(y: usize, a: f32, x: usize, n: i32): void {
  const av = f32x4.splat(a);
  const n4 = n & ~3;
  let k = 0;
  for (; k < n4; k += 4) {
    const off = <usize>k << 2;
    v128.store(y + off, f32x4.add(v128.load(y + off), f32x4.mul(av, v128.load(x + off))));
  }
  for (; k < n; k++) {
    const off = <usize>k << 2;
    store<f32>(y + off, load<f32>(y + off) + a * load<f32>(x + off));
  }
}

// Index lists (i32 ids, as the sparse kernels take them): entry k, and the address of row S[k] of a matrix at w.
// A pass over four listed rows takes entries k, k+q, k+2q, k+3q (q = count / 4): from the four quarters of an
// ascending list, so each of the four streams walks forward through the matrix.
@inline export function listed(idx: usize, k: i32): i32 {
  return load<i32>(idx + (<usize>k << 2));
}

@inline export function listedRow(w: usize, idx: usize, k: i32, rowBytes: usize): usize {
  return w + <usize>listed(idx, k) * rowBytes;
}

// Entry k of an f32 list (the coefficients a column scatter pairs with its listed rows).
@inline export function at(a: usize, k: i32): f32 {
  return load<f32>(a + (<usize>k << 2));
}
