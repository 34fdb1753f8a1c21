import { dequantize } from "../quant";
import type { Tensor } from "../tensor";
import { check, shapeOf } from "./check";

/** out = table[row] as f32, whatever the table's dtype (one row per token: decoding it in TS costs little). */
export function embeddingRow(out: Tensor, table: Tensor, row: number): void {
  check("embeddingRow", out.dtype === "f32" && table.shape.length === 2 && out.size === table.shape[1], () =>
    `out ${shapeOf(out)} (${out.dtype}), table ${shapeOf(table)}`);
  const r = table.row(row);
  if (r.dtype === "f32") out.copyFrom(r);
  else out.write(dequantize(r.dtype, r.bytesView(), r.size));
}
