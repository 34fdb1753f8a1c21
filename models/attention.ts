// The attention block with head sparsity: xb2 = W_o · attention(rope(W_q x), cache(rope(W_k x), W_v x)) over the
// heads a head gate keeps. KV policies for skipped heads:
//   keep  K and V are still written for every head; Q, scores and the output rows of skipped heads are skipped
//   skip  KV heads whose query heads are all skipped write nothing: the cache records a hole there, which later
//         queries never read
//   mask  everything is computed and the skipped heads' outputs are zeroed (accuracy simulation)
// With a head gate, W_o is stored transposed and its product is a per-head column scatter, so mask and keep sum the
// same terms in the same order: identical outputs.
import type { Engine } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { attention } from "../engine/ops/attention";
import { matmul } from "../engine/ops/matmul";
import { matvec, matvecBlocks } from "../engine/ops/matvec";
import { rope } from "../engine/ops/rope";
import { matvecColumns, scatterAxpy, scatterHeads } from "../engine/ops/sparse";
import type { Tensor } from "../engine/tensor";
import { headSize, type LlamaConfig } from "./config";
import type { HeadGate, KvPolicy } from "./gates/head-gate";
import type { TealHook } from "./teal";
import type { KVCache } from "./kv-cache";
import type { RopeTable } from "./rope";
import type { LayerWeights } from "./weights";

export interface AttentionStatsSummary {
  tokens: number;
  /** Mean fraction of query heads computed, per layer. */
  head_active_fraction: number[];
  /** Mean fraction of KV heads left as holes at each new position, per layer. */
  kv_hole_fraction: number[];
  /**
   * Multiply-adds of the four projections (q, k, v, o) done, plus the head gate's own (a predictor's; the oracle's
   * scoring), as a fraction of the dense projections', per layer.
   */
  proj_mac_fraction: number[];
}

export class AttentionBlock {
  private gate: HeadGate | null = null;
  tracer: HeadTracer | null = null;
  /** TEAL: sparsifies the attention output before W_o (point 1). */
  teal: TealHook | null = null;
  private policy: KvPolicy = "keep";
  private readonly q: Tensor;
  private readonly o: Tensor; // attention output, per head
  private readonly att: Tensor;
  private readonly heads: Tensor; // i32 active heads
  private readonly allHeads: Tensor;
  private readonly contribution: Tensor;
  // TEAL column gather (weights stored transposed): the nonzero inputs of a product, as indices and values.
  private readonly colIdx: Tensor;
  private readonly colVals: Tensor;
  private readonly hs: number;
  private readonly shape: { nHeads: number; nKvHeads: number; headSize: number };
  // Per-token scratch, allocated once: a score per query head (query or contribution norms), and per KV head
  // whether this position writes it.
  private readonly headScores: Float32Array;
  private readonly kvActive: Uint8Array;
  private readonly kvIdx: Int32Array; // the active KV heads in order (skip policy)
  private tokens = 0;
  private active: number[];
  private holes: number[];
  private macs: number[];

  constructor(engine: Engine, private readonly c: LlamaConfig, private readonly cache: KVCache, private readonly rope: RopeTable) {
    this.hs = headSize(c);
    this.shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: this.hs };
    this.headScores = new Float32Array(c.nHeads);
    this.kvActive = new Uint8Array(c.nKvHeads);
    this.kvIdx = new Int32Array(c.nKvHeads);
    this.q = engine.tensor([c.dim]);
    this.o = engine.tensor([c.dim]);
    this.att = engine.tensor([c.nHeads, c.seqLen]);
    this.heads = engine.tensor([c.nHeads], "i32");
    this.allHeads = engine.tensor([c.nHeads], "i32");
    this.allHeads.i32().forEach((_, i, a) => (a[i] = i));
    this.contribution = engine.tensor([c.dim]);
    this.colIdx = engine.tensor([c.dim], "i32");
    this.colVals = engine.tensor([c.dim]);
    this.active = new Array<number>(c.nLayers).fill(0);
    this.holes = new Array<number>(c.nLayers).fill(0);
    this.macs = new Array<number>(c.nLayers).fill(0);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * (5 * c.dim + c.nHeads * c.seqLen + 2 * c.nHeads) + 10 * 64;
  }

  /** ‖W_o,h · o_h‖ for every head h (W_o transposed), in headScores (clobbers heads[0]). */
  private contributionNorms(lw: LayerWeights, o: Tensor): Float32Array {
    const scores = this.headScores;
    const one = this.heads.i32();
    for (let h = 0; h < this.c.nHeads; h++) {
      one[0] = h;
      scatterHeads(this.contribution, lw.wo, o, this.heads, 1, this.hs);
      let s = 0;
      for (const v of this.contribution.f32()) s += v * v;
      scores[h] = Math.sqrt(s);
    }
    return scores;
  }

  configure(gate: HeadGate | null, policy: KvPolicy, woTransposed: boolean): void {
    if (gate && !woTransposed) throw new DynactError("head gates need W_o stored transposed: load the model with transposeWo");
    this.gate = gate;
    this.policy = policy;
    this.tokens = 0;
    this.active.fill(0);
    this.holes.fill(0);
    this.macs.fill(0);
  }

  summary(): AttentionStatsSummary {
    const n = this.tokens / this.c.nLayers;
    return {
      tokens: n,
      head_active_fraction: this.active.map((a) => (n ? a / n : 0)),
      kv_hole_fraction: this.holes.map((h) => (n ? h / n : 0)),
      proj_mac_fraction: this.macs.map((m) => (n ? m / n : 0)),
    };
  }

  /** out = W_o · attention for layer l at position pos; reads x (the normalised block input). */
  run(l: number, lw: LayerWeights, x: Tensor, out: Tensor, pos: number): void {
    const { c, hs, q, o } = this;
    const k = this.cache.keys[l].row(pos);
    const v = this.cache.values[l].row(pos);
    this.rope.ensure(pos + 1);
    const cos = this.rope.cos.row(pos);
    const sin = this.rope.sin.row(pos);
    const valid = this.cache.valid[l];
    const { shape, kvActive } = this;
    const gate = this.gate;
    this.tokens++;
    const validMap = valid.u8();
    const group = c.nHeads / c.nKvHeads;

    let count = c.nHeads;
    const idx = this.heads.i32();
    if (gate?.score === "input") count = gate.select(l, null, idx, x);
    if (gate?.score === "input" && this.policy !== "mask" && count < c.nHeads) {
      // Heads known from the input: only their query rows (row ranges give each row the bits of the full product).
      matvecBlocks(q, lw.wq, x, idx, count, hs);
      for (let i = 0; i < count; i++) rope(q.slice(idx[i] * hs, hs), hs, cos, sin);
    } else if (lw.inputsTransposed) {
      // TEAL gather: q, k and v as column gathers over x's nonzero entries (no head gate: checked at configure).
      const nonzero = matvecColumns(q, lw.wq, x, this.colIdx, this.colVals);
      scatterAxpy(k, lw.wk, this.colVals, this.colIdx, nonzero);
      scatterAxpy(v, lw.wv, this.colVals, this.colIdx, nonzero);
      rope(q, hs, cos, sin);
    } else {
      // The query of every head: the query-norm score needs it, and mask and the oracle compute everything.
      matvec(q, lw.wq, x);
      rope(q, hs, cos, sin);
    }
    if (gate?.score === "query-norm") {
      count = gate.select(l, headNorms(q.f32(), hs, this.headScores), idx);
    }
    // Keys and values: under skip, only KV heads that a kept query head reads (when the heads are known yet).
    const known = gate?.score === "query-norm" || gate?.score === "input";
    const skipKnown = this.policy === "skip" && known && count < c.nHeads;
    kvActive.fill(skipKnown ? 0 : 1);
    if (skipKnown) for (let i = 0; i < count; i++) kvActive[Math.floor(idx[i] / group)] = 1;
    if (!skipKnown) {
      if (!lw.inputsTransposed) {
        matvec(k, lw.wk, x);
        matvec(v, lw.wv, x);
      }
      rope(k, hs, cos, sin);
    } else {
      // Row ranges of the dense kernel: each row's bits are those of the full product.
      const kvIdx = this.kvIdx;
      let kvCount = 0;
      for (let g = 0; g < c.nKvHeads; g++) if (kvActive[g]) kvIdx[kvCount++] = g;
      matvecBlocks(k, lw.wk, x, kvIdx, kvCount, hs);
      matvecBlocks(v, lw.wv, x, kvIdx, kvCount, hs);
      for (let i = 0; i < kvCount; i++) rope(k.slice(kvIdx[i] * hs, hs), hs, cos, sin);
    }
    for (let g = 0; g < c.nKvHeads; g++) validMap[g * c.seqLen + pos] = kvActive[g];
    const holesSoFar = this.policy === "skip" ? valid : null;

    // Attention of the heads that need it: all of them when the gate is an oracle or the policy is mask.
    const computeAll = !gate || gate.score === "output-norm" || this.policy === "mask" || count === c.nHeads;
    if (computeAll) {
      attention(o, q, this.cache.keys[l], this.cache.values[l], this.att, shape, pos + 1, null, holesSoFar);
    } else {
      attention(o, q, this.cache.keys[l], this.cache.values[l], this.att, shape, pos + 1, { idx: this.heads, count }, holesSoFar);
    }
    if (gate?.score === "output-norm") {
      count = gate.select(l, this.contributionNorms(lw, o), idx);
      if (this.policy === "skip") {
        // The oracle saw every head; the cache keeps only the KV heads its kept heads read.
        // (kvActive is all ones here: skipKnown is false for the oracle, so it is free to reuse.)
        kvActive.fill(0);
        for (let i = 0; i < count; i++) kvActive[Math.floor(idx[i] / group)] = 1;
        for (let g = 0; g < c.nKvHeads; g++) validMap[g * c.seqLen + pos] = kvActive[g];
      }
    }

    this.teal?.apply(l, 1, o);
    this.active[l] += count / c.nHeads;
    const qHeads = gate?.score === "input" && this.policy !== "mask" ? count : c.nHeads;
    let kvHeads = c.nKvHeads;
    if (skipKnown) {
      kvHeads = 0;
      for (let g = 0; g < c.nKvHeads; g++) kvHeads += kvActive[g];
    }
    const oHeads = gate && this.policy !== "mask" ? count : c.nHeads;
    const gateMacs = gate?.score === "output-norm" ? c.dim * c.dim : (gate?.selectMacs ?? 0);
    this.macs[l] += ((qHeads + oHeads + 2 * kvHeads) * hs * c.dim + gateMacs) / ((2 * c.nHeads + 2 * c.nKvHeads) * hs * c.dim);
    for (let g = 0; g < c.nKvHeads; g++) this.holes[l] += validMap[g * c.seqLen + pos] ? 0 : 1 / c.nKvHeads;

    if (this.tracer && !gate) this.tracer(l, x, this.contributionNorms(lw, o));
    if (!gate || count === c.nHeads) {
      if (lw.inputsTransposed) matvecColumns(out, lw.wo, o, this.colIdx, this.colVals);
      else if (lw.woTransposed) scatterHeads(out, lw.wo, o, this.allHeads, c.nHeads, hs);
      else matvec(out, lw.wo, o);
      return;
    }
    if (this.policy === "mask") {
      // zero the skipped heads, then the same per-head scatter over all heads
      const oa = o.f32();
      let next = 0;
      for (let h = 0; h < c.nHeads; h++) {
        if (next < count && idx[next] === h) next++;
        else oa.fill(0, h * hs, (h + 1) * hs);
      }
      scatterHeads(out, lw.wo, o, this.allHeads, c.nHeads, hs);
    } else {
      scatterHeads(out, lw.wo, o, this.heads, count, hs);
    }
  }

  /** No head gate and no tracer: every head runs and nothing observes a token, as in runBatch. */
  get dense(): boolean {
    return this.gate === null && this.tracer === null;
  }

  /**
   * run() for the T positions startPos… of a chunk at once, dense only: x, out [T, dim]; q, o [T, dim] scratch.
   * The products are GEMMs (each row the bits of run's GEMV), K and V go straight into the cache rows, then each
   * position attends to the cache up to itself with the single-query kernel (the chunk's later rows are there
   * but never read), so every row equals run() at that position.
   */
  runBatch(l: number, lw: LayerWeights, x: Tensor, out: Tensor, q: Tensor, o: Tensor, startPos: number): void {
    const { c, hs } = this;
    const T = x.shape[0];
    const keys = this.cache.keys[l];
    const values = this.cache.values[l];
    const k = keys.rows(startPos, T);
    matmul(q, lw.wq, x);
    matmul(k, lw.wk, x);
    matmul(values.rows(startPos, T), lw.wv, x);
    const validMap = this.cache.valid[l].u8();
    this.rope.ensure(startPos + T);
    for (let t = 0; t < T; t++) {
      const pos = startPos + t;
      const cos = this.rope.cos.row(pos);
      const sin = this.rope.sin.row(pos);
      rope(q.row(t), hs, cos, sin);
      rope(k.row(t), hs, cos, sin);
      for (let g = 0; g < c.nKvHeads; g++) validMap[g * c.seqLen + pos] = 1;
    }
    const holesSoFar = this.policy === "skip" ? this.cache.valid[l] : null;
    for (let t = 0; t < T; t++) {
      attention(o.row(t), q.row(t), keys, values, this.att, this.shape, startPos + t + 1, null, holesSoFar);
    }
    matmul(out, lw.wo, o);
    this.tokens += T;
    this.active[l] += T;
    this.macs[l] += T;
  }
}

/**
 * Sees each layer's block input and every head's contribution norm ‖W_o,h · o_h‖ on the dense path (the norms are
 * scratch that the next token overwrites: copy what you keep).
 */
export type HeadTracer = (l: number, x: Tensor, contributionNorms: Float32Array) => void;

/** ‖q_h‖ for every head, written to out (one entry per head). */
function headNorms(q: Float32Array, hs: number, out: Float32Array): Float32Array {
  for (let h = 0; h < out.length; h++) {
    let s = 0;
    for (let i = h * hs; i < (h + 1) * hs; i++) s += q[i] * q[i];
    out[h] = Math.sqrt(s);
  }
  return out;
}
