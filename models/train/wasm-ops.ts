// Training buffers in engine memory, so the f32 matmuls run on the SIMD GEMM kernel and attention on the
// training attention kernels (kernels-as/train_attention.ts): on stories260K's shapes a step is ~8× faster than
// with the plain-TS loops (bench/train.ts: ~3,100 against ~380 tokens/s at 8×128, one thread). Every product is
// put in the GEMM kernel's form C[r, :] = B · A[r, :]: the backward products first transpose their operands into
// scratch (O(N·(I+O)) moves against O(N·I·O) multiply-adds), and results that accumulate go through scratch and
// the add kernel.
import { Engine } from "../../engine/engine";
import type { Kernels } from "../../engine/kernels";
import type { AttentionShape } from "./attention";
import type { Floats } from "./floats";
import type { TrainOps } from "./ops";

const ALIGN_FLOATS = 16; // 64 bytes, the arena's alignment

const aligned = (n: number): number => Math.ceil(n / ALIGN_FLOATS) * ALIGN_FLOATS;

export class WasmOps implements TrainOps {
  private readonly k: Kernels;
  private readonly pool: Float32Array;
  private top = 0;
  private readonly tA: Float32Array; // transposed operand
  private readonly tB: Float32Array; // transposed operand
  private readonly out: Float32Array; // product before it is added
  private readonly attn: Float32Array; // the attention kernels' scratch

  /**
   * Room for buffers totalling `floats` values (as counted by `WasmOps.floats`), for products of up to `rows`
   * rows and `width` columns on either side, and for attention over `seq` positions of heads of `headSize`.
   */
  constructor(floats: number, s: { rows: number; width: number; seq: number; headSize: number }) {
    const wide = Math.max(s.rows, s.width) * s.width;
    // The attention kernels' scratch layout (kernels-as/train_attention.ts): 4 planes [hs][T4] and 2 rows [T4].
    const T4 = Math.ceil(s.seq / 4) * 4;
    const scratch = [wide, s.rows * s.width, wide, 4 * s.headSize * T4 + 2 * T4];
    const total = floats + scratch.reduce((sum, n) => sum + aligned(n), 0);
    const engine = Engine.create(4 * total + 64);
    this.k = engine.kernels;
    this.pool = engine.tensor([total]).f32();
    [this.tA, this.tB, this.out, this.attn] = scratch.map((n) => this.alloc(n));
  }

  /** Pool floats that buffers of these sizes take, alignment included. */
  static floats(sizes: readonly number[]): number {
    return sizes.reduce((s, n) => s + aligned(n), 0);
  }

  alloc(n: number): Float32Array {
    if (this.top + n > this.pool.length) throw new Error(`training memory exhausted (${n} more floats)`);
    const view = this.pool.subarray(this.top, this.top + n);
    this.top += aligned(n);
    return view;
  }

  private ptr(a: Floats): number {
    if (!(a instanceof Float32Array) || a.buffer !== this.pool.buffer) throw new Error("buffer is not in training memory");
    return a.byteOffset;
  }

  /** C[r, :] = B · A[r, :] for r < R: A [R, K], B [M, K], C [R, M] (the GEMM kernel: B's rows act as W's). */
  private product(c: number, a: number, b: number, R: number, K: number, M: number): void {
    this.k.gemm_f32(c, b, a, K, 0, M, R, M);
  }

  matmulForward(y: Floats, x: Floats, w: Floats, N: number, I: number, O: number): void {
    this.product(this.ptr(y), this.ptr(x), this.ptr(w), N, I, O);
  }

  matmulBackward(dx: Floats, dw: Floats, dy: Floats, x: Floats, w: Floats, N: number, I: number, O: number): void {
    const { tA, tB, out } = this;
    // dx += dy · w = rows of dy against the rows of wᵀ
    transpose(tA, w, O, I);
    this.product(this.ptr(out), this.ptr(dy), this.ptr(tA), N, O, I);
    this.k.add_f32(this.ptr(dx), this.ptr(dx), this.ptr(out), N * I);
    // dw += dyᵀ · x = rows of dyᵀ against the rows of xᵀ
    transpose(tA, dy, N, O);
    transpose(tB, x, N, I);
    this.product(this.ptr(out), this.ptr(tA), this.ptr(tB), O, N, I);
    this.k.add_f32(this.ptr(dw), this.ptr(dw), this.ptr(out), O * I);
  }

  attentionForward(out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats, a: AttentionShape): void {
    const p = { out: this.ptr(out), lse: this.ptr(lse), q: this.ptr(q), k: this.ptr(k), v: this.ptr(v), s: this.ptr(this.attn) };
    for (let b = 0; b < a.B; b++) {
      for (let h = 0; h < a.nHeads; h++) {
        const o = headOffsets(a, b, h);
        this.k.attention_train_fwd_f32(p.out + o.q, p.lse + o.lse, p.q + o.q, p.k + o.kv, p.v + o.kv, p.s,
          a.T, a.headSize, a.nHeads * a.headSize, a.nKvHeads * a.headSize);
      }
    }
  }

  attentionBackward(
    dq: Floats, dk: Floats, dv: Floats, dout: Floats, out: Floats, lse: Floats, q: Floats, k: Floats, v: Floats, a: AttentionShape,
  ): void {
    const p = {
      dq: this.ptr(dq), dk: this.ptr(dk), dv: this.ptr(dv), dout: this.ptr(dout), out: this.ptr(out), lse: this.ptr(lse),
      q: this.ptr(q), k: this.ptr(k), v: this.ptr(v), s: this.ptr(this.attn),
    };
    for (let b = 0; b < a.B; b++) {
      for (let h = 0; h < a.nHeads; h++) {
        const o = headOffsets(a, b, h);
        this.k.attention_train_bwd_f32(p.dq + o.q, p.dk + o.kv, p.dv + o.kv, p.dout + o.q, p.out + o.q, p.lse + o.lse,
          p.q + o.q, p.k + o.kv, p.v + o.kv, p.s, a.T, a.headSize, a.nHeads * a.headSize, a.nKvHeads * a.headSize);
      }
    }
  }
}

/** Byte offsets of the rows of sequence b, head h: q/out rows and its KV head's k/v rows, and its lse row. */
function headOffsets(a: AttentionShape, b: number, h: number): { q: number; kv: number; lse: number } {
  const { T, nHeads: H, nKvHeads: KV, headSize: hs } = a;
  return { q: 4 * (b * T * H * hs + h * hs), kv: 4 * (b * T * KV * hs + Math.floor(h / (H / KV)) * hs), lse: 4 * (b * H + h) * T };
}

/** dst [cols, rows] = srcᵀ, src [rows, cols]. */
function transpose(dst: Float32Array, src: Floats, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[o + c];
  }
}
