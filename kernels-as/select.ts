// Index selection for neuron gates: which of n scores survive. Selection, not a sort.
//   select_threshold_f32  S = { i : score[i] > eps } (strict: a score of exactly eps is dropped), ascending; returns |S|
//   kth_largest_f32       the k-th largest score (1-based), by quickselect on a scratch copy
//   select_topk_f32       exactly k indices, ascending: all scores above the k-th largest, then ties from the lowest id

// SIMD compare four scores at a time; the lane mask says which indices to append.
export function select_threshold_f32(idx: usize, scores: usize, n: i32, eps: f32): i32 {
  const e = f32x4.splat(eps);
  const n4 = n & ~3;
  let count = 0;
  let i = 0;
  for (; i < n4; i += 4) {
    let mask = i32x4.bitmask(f32x4.gt(v128.load(scores + (<usize>i << 2)), e));
    while (mask != 0) {
      const lane = ctz(mask);
      store<i32>(idx + (<usize>count << 2), i + lane);
      count++;
      mask &= mask - 1;
    }
  }
  for (; i < n; i++) {
    if (load<f32>(scores + (<usize>i << 2)) > eps) {
      store<i32>(idx + (<usize>count << 2), i);
      count++;
    }
  }
  return count;
}

// Hoare-style quickselect with a median-of-three pivot on scratch[0..n); scratch is clobbered.
export function kth_largest_f32(scores: usize, n: i32, k: i32, scratch: usize): f32 {
  memory.copy(scratch, scores, <usize>n << 2);
  let lo = 0;
  let hi = n - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const mid = lo + ((hi - lo) >> 1);
    let a = load<f32>(scratch + (<usize>lo << 2));
    let b = load<f32>(scratch + (<usize>mid << 2));
    let c = load<f32>(scratch + (<usize>hi << 2));
    const pivot = a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (load<f32>(scratch + (<usize>i << 2)) > pivot) i++;
      while (load<f32>(scratch + (<usize>j << 2)) < pivot) j--;
      if (i <= j) {
        const pi = scratch + (<usize>i << 2);
        const pj = scratch + (<usize>j << 2);
        const t = load<f32>(pi);
        store<f32>(pi, load<f32>(pj));
        store<f32>(pj, t);
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return load<f32>(scratch + (<usize>target << 2));
}

export function select_topk_f32(idx: usize, scores: usize, n: i32, k: i32, scratch: usize): i32 {
  if (k <= 0) return 0;
  if (k >= n) {
    for (let i = 0; i < n; i++) store<i32>(idx + (<usize>i << 2), i);
    return n;
  }
  const kth = kth_largest_f32(scores, n, k, scratch);
  let above = 0;
  for (let i = 0; i < n; i++) if (load<f32>(scores + (<usize>i << 2)) > kth) above++;
  let ties = k - above;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const s = load<f32>(scores + (<usize>i << 2));
    if (s > kth || (s == kth && ties-- > 0)) {
      store<i32>(idx + (<usize>count << 2), i);
      count++;
    }
  }
  return count;
}
