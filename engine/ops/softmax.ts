import type { Tensor } from "../tensor";
import { check, checkF32 } from "./check";

/** Softmax in place over the first n values of x (default: all). */
export function softmax(x: Tensor, n = x.size): void {
  checkF32("softmax", x);
  check("softmax", n >= 0 && n <= x.size, () => `n ${n} of ${x.size}`);
  x.engine.kernels.softmax_f32(x.offset, n);
}
