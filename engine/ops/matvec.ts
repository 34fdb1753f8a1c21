import type { Tensor } from "../tensor";
import { check, checkF32, shapeOf } from "./check";

/** out[r] = w[r,:] · x for rows [rowStart, rowEnd) of w: [d, n] (default: all rows). */
export function matvec(out: Tensor, w: Tensor, x: Tensor, rowStart = 0, rowEnd = w.shape[0]): void {
  checkF32("matvec", out, w, x);
  const [d, n] = w.shape;
  check("matvec", w.shape.length === 2 && x.size === n && out.size === d, () =>
    `w ${shapeOf(w)}, x ${shapeOf(x)}, out ${shapeOf(out)}`);
  check("matvec", 0 <= rowStart && rowStart <= rowEnd && rowEnd <= d, () => `rows [${rowStart}, ${rowEnd}) of ${d}`);
  w.engine.kernels.matvec_f32(out.offset, w.offset, x.offset, n, rowStart, rowEnd);
}
