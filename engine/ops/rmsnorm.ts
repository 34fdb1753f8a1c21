import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/** out = w ⊙ x / sqrt(mean(x²) + eps); out may be x. x (and out) may be [T, n] with w [n]: each row alone. */
export function rmsnorm(out: Tensor, x: Tensor, w: Tensor, eps: number): void {
  checkF32("rmsnorm", out, x, w);
  const n = w.size;
  check("rmsnorm", out.size === x.size && (x.shape.length === 2 ? x.shape[1] === n : x.size === n), () =>
    `x ${shapeOf(x)}, w ${shapeOf(w)}, out ${shapeOf(out)}`);
  const k = x.engine.kernels;
  for (let r = 0; r < x.size / n; r++) k.rmsnorm_f32(out.offset + 4 * r * n, x.offset + 4 * r * n, w.offset, n, eps);
}
