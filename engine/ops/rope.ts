import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/** Rotate adjacent pairs of each head of x in place by the angles whose cos/sin (headSize/2 each) are given. */
export function rope(x: Tensor, headSize: number, cos: Tensor, sin: Tensor): void {
  checkF32("rope", x, cos, sin);
  check("rope", headSize > 0 && headSize % 2 === 0 && x.size % headSize === 0, () =>
    `x ${shapeOf(x)} is not whole heads of even size ${headSize}`);
  check("rope", cos.size === headSize / 2 && sin.size === headSize / 2, () =>
    `cos ${shapeOf(cos)}, sin ${shapeOf(sin)} for head size ${headSize}`);
  x.engine.kernels.rope_f32(x.offset, x.size / headSize, headSize, cos.offset, sin.offset);
}
