import type { Tensor } from "../tensor";
import { checkF32 } from "./check";

/** Σ x (f32, vector order; the read-bandwidth probe of bench/kernels.ts rather than an accurate sum). */
export function sum(x: Tensor): number {
  checkF32("sum", x);
  return x.engine.kernels.sum_f32(x.offset, x.size);
}
