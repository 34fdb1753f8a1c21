import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

function same(op: string, ...ts: Tensor[]): void {
  checkF32(op, ...ts);
  check(op, ts.every((t) => t.size === ts[0].size), () => ts.map(shapeOf).join(" vs "));
}

/** out = x · sigmoid(x) */
export function silu(out: Tensor, x: Tensor): void {
  same("silu", out, x);
  x.engine.kernels.silu_f32(out.offset, x.offset, x.size);
}

/** out = max(x, 0) */
export function relu(out: Tensor, x: Tensor): void {
  same("relu", out, x);
  x.engine.kernels.relu_f32(out.offset, x.offset, x.size);
}

/** out = max(x, 0)² */
export function relu2(out: Tensor, x: Tensor): void {
  same("relu2", out, x);
  x.engine.kernels.relu2_f32(out.offset, x.offset, x.size);
}

/** out = GELU(x), tanh approximation */
export function gelu(out: Tensor, x: Tensor): void {
  same("gelu", out, x);
  x.engine.kernels.gelu_f32(out.offset, x.offset, x.size);
}

/** out = |x| ⊙ c, or |x| when c is omitted */
export function absMul(out: Tensor, x: Tensor, c?: Tensor): void {
  if (c) same("absMul", out, x, c);
  else same("absMul", out, x);
  x.engine.kernels.abs_mul_f32(out.offset, x.offset, c ? c.offset : 0, x.size);
}

/** out = a ⊙ b */
export function mul(out: Tensor, a: Tensor, b: Tensor): void {
  same("mul", out, a, b);
  a.engine.kernels.mul_f32(out.offset, a.offset, b.offset, a.size);
}

/** out = a + b */
export function add(out: Tensor, a: Tensor, b: Tensor): void {
  same("add", out, a, b);
  a.engine.kernels.add_f32(out.offset, a.offset, b.offset, a.size);
}

/** x_i = 0 where |x_i| <= t (keeps |x_i| > t), in place. */
export function sparsify(x: Tensor, t: number): void {
  checkF32("sparsify", x);
  x.engine.kernels.sparsify_f32(x.offset, x.size, t);
}
