// Input-sparse products (TEAL run as a column gather): y = W x with x mostly zero is Σ_{j: x_j ≠ 0} x_j · W[:, j],
// i.e. a column scatter (sparse.ts scatter_axpy_f32) over Wᵀ stored at load, once x's nonzero entries are listed.
//   compact_nonzero_f32   idx[0..count) = the j with x[j] ≠ 0 (ascending), vals = those x[j]; returns count
// Four entries are tested at once and a block of four zeros is skipped with one branch.
export function compact_nonzero_f32(idx: usize, vals: usize, x: usize, n: i32): i32 {
  let count = 0;
  const n4 = n & ~3;
  const zero = f32x4.splat(0);
  let j = 0;
  for (; j < n4; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    if (!v128.any_true(f32x4.ne(v, zero))) continue;
    for (let i = 0; i < 4; i++) count = keep(idx, vals, x, j + i, count);
  }
  for (; j < n; j++) count = keep(idx, vals, x, j, count);
  return count;
}

@inline function keep(idx: usize, vals: usize, x: usize, j: i32, count: i32): i32 {
  const v = load<f32>(x + (<usize>j << 2));
  if (v == 0) return count;
  store<i32>(idx + (<usize>count << 2), j);
  store<f32>(vals + (<usize>count << 2), v);
  return count + 1;
}
