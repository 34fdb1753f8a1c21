// Shape checks shared by the ops: a wrong shape is a ShapeError naming the op, never an out-of-bounds kernel.
import { ShapeError } from "../errors";
import type { Tensor } from "../tensor";

export function check(op: string, ok: boolean, detail: () => string): void {
  if (!ok) throw new ShapeError(`${op}: ${detail()}`);
}

export function checkF32(op: string, ...ts: Tensor[]): void {
  const engine = ts[0].engine;
  for (const t of ts) {
    check(op, t.dtype === "f32", () => `expected f32, got ${t.dtype}`);
    check(op, t.engine === engine, () => "tensors from different engines");
  }
}

export function shapeOf(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}
