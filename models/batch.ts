// Scratch of the batched forward pass (LlamaModel.forwardBatch): activations of a chunk of positions, as [T, ·]
// rows. Allocated once at model build for the largest chunk, so a pass allocates nothing.
import type { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import type { LlamaConfig } from "./config";

// Positions per chunk. Each GEMM reads its weights once per chunk, so the weight traffic per token falls as 1/T
// until the products are bound by arithmetic; at 64 a 4-row block of W is already reused 64 times from L1, and
// the [T, vocab] logits stay at 8 MiB for a 32000-piece vocabulary.
const MAX_CHUNK = 64;

/** Positions forwardBatch takes at once for this config. */
export function chunkTokens(c: LlamaConfig): number {
  return Math.min(MAX_CHUNK, c.seqLen);
}

export class BatchState {
  readonly tokens: number;
  readonly x: Tensor; // residual stream
  readonly xb: Tensor; // normalised input of a sublayer
  readonly xb2: Tensor; // sublayer output before the residual add
  readonly q: Tensor; // attention queries
  readonly o: Tensor; // attention output, per head
  readonly hb: Tensor; // act(W_gate x), then the MLP activation
  readonly hb2: Tensor; // W_up x
  readonly logits: Tensor;

  constructor(engine: Engine, c: LlamaConfig) {
    const t = (this.tokens = chunkTokens(c));
    this.x = engine.tensor([t, c.dim]);
    this.xb = engine.tensor([t, c.dim]);
    this.xb2 = engine.tensor([t, c.dim]);
    this.q = engine.tensor([t, c.dim]);
    this.o = engine.tensor([t, c.dim]);
    this.hb = engine.tensor([t, c.hiddenDim]);
    this.hb2 = engine.tensor([t, c.hiddenDim]);
    this.logits = engine.tensor([t, c.vocabSize]);
  }

  static bytes(c: LlamaConfig): number {
    return 4 * chunkTokens(c) * (5 * c.dim + 2 * c.hiddenDim + c.vocabSize) + 8 * 64;
  }
}
