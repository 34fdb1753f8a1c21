import type { Tensor } from "../tensor";
import { check, checkF32 } from "./check";

/** Index of the largest value; ties go to the lowest index. */
export function argmax(x: Tensor): number {
  checkF32("argmax", x);
  check("argmax", x.size > 0, () => "empty tensor");
  return x.engine.kernels.argmax_f32(x.offset, x.size);
}
