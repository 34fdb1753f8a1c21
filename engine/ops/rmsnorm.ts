import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/** out = w ⊙ x / sqrt(mean(x²) + eps); out may be x. */
export function rmsnorm(out: Tensor, x: Tensor, w: Tensor, eps: number): void {
  checkF32("rmsnorm", out, x, w);
  check("rmsnorm", out.size === x.size && w.size === x.size, () =>
    `x ${shapeOf(x)}, w ${shapeOf(w)}, out ${shapeOf(out)}`);
  x.engine.kernels.rmsnorm_f32(out.offset, x.offset, w.offset, x.size, eps);
}
