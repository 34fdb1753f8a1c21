// A model's trainable tensors in one flat buffer, with a gradient buffer of the same layout: the optimizer and
// the gradient norm see one array, the model sees named views. Canonical tensor names and shapes
// (models/checkpoint.ts); a tied classifier has no `output` entry (token_embd serves both).
import { canonicalShapes } from "../checkpoint";
import type { LlamaConfig } from "../config";
import type { Floats } from "./floats";
import type { TrainOps } from "./ops";

export interface ParamEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

function layout(config: LlamaConfig, tied: boolean): ParamEntry[] {
  const entries: ParamEntry[] = [];
  let offset = 0;
  for (const [name, shape] of canonicalShapes(config)) {
    if (name === "output" && tied) continue;
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape, offset, size });
    offset += size;
  }
  return entries;
}

const total = (entries: readonly ParamEntry[]): number => entries.reduce((s, e) => s + e.size, 0);

export class Params {
  readonly entries: ParamEntry[];
  readonly data: Floats;
  readonly grad: Floats;
  private readonly byName: Map<string, ParamEntry>;

  constructor(readonly config: LlamaConfig, readonly tied: boolean, readonly ops: TrainOps) {
    this.entries = layout(config, tied);
    this.byName = new Map(this.entries.map((e) => [e.name, e]));
    this.data = ops.alloc(total(this.entries));
    this.grad = ops.alloc(total(this.entries));
  }

  /** Parameters from per-tensor values (a checkpoint's, or random ones). */
  static from(config: LlamaConfig, tied: boolean, tensor: (name: string) => ArrayLike<number>, ops: TrainOps): Params {
    const p = new Params(config, tied, ops);
    for (const e of p.entries) p.data.set(tensor(e.name), e.offset);
    return p;
  }

  /** Sizes of the buffers a Params allocates. */
  static bufferSizes(config: LlamaConfig, tied: boolean): number[] {
    const n = total(layout(config, tied));
    return [n, n];
  }

  private entry(name: string): ParamEntry {
    const e = this.byName.get(name === "output" && this.tied ? "token_embd" : name);
    if (!e) throw new Error(`no parameter ${name}`);
    return e;
  }

  /** A view of the named tensor's values (`output` is token_embd when tied). */
  value(name: string): Floats {
    const e = this.entry(name);
    return this.data.subarray(e.offset, e.offset + e.size);
  }

  gradient(name: string): Floats {
    const e = this.entry(name);
    return this.grad.subarray(e.offset, e.offset + e.size);
  }

  /** The named tensor as a fresh f32 array, as the checkpoint writers take it. */
  tensorF32(name: string): Float32Array {
    return Float32Array.from(this.value(name));
  }
}
