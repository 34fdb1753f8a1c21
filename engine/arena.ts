// A bump allocator over one WebAssembly.Memory. Everything a model needs (weights, KV cache, scratch) is
// allocated once, up front; the memory is sized before loading and never grows, so views never go stale.
import { MemoryLimitError } from "./errors";

export const PAGE = 65536;
/** wasm32 addresses at most 4 GiB. */
export const MAX_BYTES = 65536 * PAGE;
export const ALIGN = 64;

export function alignUp(n: number, align = ALIGN): number {
  return Math.ceil(n / align) * align;
}

export class Arena {
  private top: number;

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly base: number,
    readonly limit: number,
  ) {
    this.top = base;
  }

  /** Reserve `bytes` at an ALIGN-aligned offset; throws when the arena is full. */
  alloc(bytes: number): number {
    const at = alignUp(this.top);
    if (at + bytes > this.limit) {
      throw new MemoryLimitError(
        `out of engine memory: ${bytes} bytes requested, ${Math.max(0, this.limit - at)} free of ${this.limit - this.base}`,
      );
    }
    this.top = at + bytes;
    return at;
  }

  get used(): number {
    return this.top - this.base;
  }
}
