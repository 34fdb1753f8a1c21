// The engine: one WebAssembly.Memory (shared, so worker threads can join later), the kernels instantiated on
// it, and the arena that hands out tensors. Size it once for everything the model will need.
import { Arena, MAX_BYTES, PAGE, alignUp } from "./arena";
import { DynactError, MemoryLimitError, ShapeError } from "./errors";
import { WorkerPool } from "./pool";
import { instantiateKernels, kernelModule, type Kernels } from "./kernels";
import { tensorBytes, type DType } from "./dtype";
import { Tensor } from "./tensor";

// The kernel module's static data (Mathf's lookup tables) sits below its heap_base; one page covers it.
const RESERVE = PAGE;

/** The kernels the worker pool splits by rows: f(out, w, x, n, rowStart, rowEnd[, tokens, outStride]). */
export const ROW_KERNELS = [
  "matvec_f32", "matvec_f16", "matvec_bf16", "matvec_q8_0", "matvec_q4_0",
  "gemm_f32", "gemm_f16", "gemm_bf16", "gemm_q8_0", "gemm_q4_0",
] as const;
export type RowKernelName = (typeof ROW_KERNELS)[number];

/** Most threads an engine runs (each is a worker with its own kernel instance). */
export const MAX_THREADS = 256;

export class Engine {
  readonly kernels: Kernels;
  /** Set by startThreads; ops split their rows across it. */
  pool: WorkerPool | null = null;
  readonly arena: Arena;
  private scratchOffset = 0;
  private scratchBytes = 0;

  private constructor(readonly memory: WebAssembly.Memory) {
    this.kernels = instantiateKernels(memory);
    this.arena = new Arena(memory, RESERVE, memory.buffer.byteLength);
    if (this.kernels.heap_base() > RESERVE) {
      throw new MemoryLimitError(`kernel static data (${this.kernels.heap_base()} bytes) exceeds its reserve`);
    }
  }

  /** An engine whose arena can hold `capacity` bytes (plus alignment slack the caller includes). */
  /** Run row-split kernels on `threads` threads (this one included) from now on; 1 = single-threaded. */
  startThreads(threads: number): void {
    // The CLI capped --threads; loadModel({ threads: 1000 }) started 999 workers.
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
      throw new DynactError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`);
    }
    this.close();
    if (threads === 1) return;
    const local = Object.fromEntries(ROW_KERNELS.map((k) => [k, this.kernels[k].bind(this.kernels)]));
    this.pool = new WorkerPool(kernelModule(), this.memory, threads, ROW_KERNELS, local);
  }

  /**
   * Stop the worker threads; ops run on the calling thread from now on. Each worker holds the engine's memory, so
   * an engine is only freed once closed (and unreferenced). The pool is dropped too: a closed pool left in place
   * would wait forever for its terminated workers.
   */
  close(): void {
    this.pool?.close();
    this.pool = null;
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  static create(capacity: number): Engine {
    const total = alignUp(RESERVE + capacity, PAGE);
    if (total > MAX_BYTES) {
      throw new MemoryLimitError(
        `needs ${formatBytes(total)} of wasm memory, more than the wasm32 limit of ${formatBytes(MAX_BYTES)}`,
      );
    }
    const pages = total / PAGE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    return new Engine(memory);
  }

  tensor(shape: readonly number[], dtype: DType = "f32"): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`bad tensor shape [${shape.join(", ")}]`);
    }
    const offset = this.arena.alloc(tensorBytes(dtype, shape));
    return new Tensor(this, dtype, shape, offset);
  }

  /**
   * Reserve `bytes` of op scratch (a no-op when at least that much is reserved). Ops that need transient
   * workspace use this one region (a matvec with q8_0/q4_0 weights quantizes x into it), so they allocate
   * nothing per call. Reserve the largest need once at model build and count it in the engine's capacity: the
   * arena never frees, so growing it later leaves the old region unused. Ops run one at a time (threads split
   * the rows of one op), so one region serves them all.
   */
  reserveScratch(bytes: number): void {
    if (bytes <= this.scratchBytes) return;
    this.scratchOffset = this.arena.alloc(bytes);
    this.scratchBytes = bytes;
  }

  /** Offset of the scratch region, for an op that needs `bytes` of it. */
  scratch(op: string, bytes: number): number {
    if (bytes > this.scratchBytes) {
      throw new MemoryLimitError(`${op}: needs ${bytes} bytes of engine scratch, ${this.scratchBytes} reserved ` +
        "(Engine.reserveScratch at model build)");
    }
    return this.scratchOffset;
  }

  /** A tensor initialised from values. */
  from(values: ArrayLike<number>, shape: readonly number[] = [values.length]): Tensor {
    const t = this.tensor(shape);
    t.write(values);
    return t;
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

export { kernelModule };
