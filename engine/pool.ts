// Threads over one shared WebAssembly.Memory. Workers instantiate the same compiled kernel module on the same
// memory and wait on a control block; an op is one generation bump (Atomics.notify), every thread (the caller
// included) runs its slice of rows, and the last one to finish wakes the caller. No message passing and no
// allocation per op. Rows are split in multiples of 4 (so each thread's range divides into the four whole quarters
// the GEMVs stream, with no leftover rows), and a row's value does not depend on which range computed it, so
// results are the same bits at every thread count.
import { Worker } from "node:worker_threads";

// Control block (Int32Array over a SharedArrayBuffer):
const GEN = 0; // generation: bumped once per op
const OP = 1; // index into the op list
const ARGS = 2; // 4 kernel arguments before the row range
const ROWS = 6; // rows of this op
const DONE = 7; // workers finished with this generation
const STOP = 8;
const EXTRA = 9; // 2 kernel arguments after the row range (GEMM: tokens, output row stride)
const CTRL_INTS = 16;

// The worker: self-contained JavaScript (eval'd), so it runs the same from TypeScript sources and from the bundle.
// Workers inherit the process's flags, and under --input-type=module (node -e, a script on stdin) the source is
// read as an ES module, where `require` is undefined and the worker died; a dynamic import() works as either. A
// worker that starts late still takes its slice: it finds the generation already bumped and runs that op.
const WORKER_SOURCE = `
import("node:worker_threads").then(({ workerData }) => {
const { module, memory, ctrl, index, threads, ops } = workerData;
const exp = new WebAssembly.Instance(module, { env: { memory } }).exports;
const fns = ops.map((n) => exp[n]);
let gen = 0;
for (;;) {
  Atomics.wait(ctrl, ${GEN}, gen);
  gen = Atomics.load(ctrl, ${GEN});
  if (Atomics.load(ctrl, ${STOP})) break;
  const rows = ctrl[${ROWS}];
  const per = Math.ceil(rows / threads / 4) * 4;
  const start = Math.min(rows, index * per);
  const end = Math.min(rows, start + per);
  if (start < end) {
    fns[ctrl[${OP}]](ctrl[${ARGS}], ctrl[${ARGS + 1}], ctrl[${ARGS + 2}], ctrl[${ARGS + 3}], start, end, ctrl[${EXTRA}], ctrl[${EXTRA + 1}]);
  }
  if (Atomics.add(ctrl, ${DONE}, 1) === threads - 2) Atomics.notify(ctrl, ${DONE});
}
});
`;

/**
 * Kernels of the form f(a, b, c, d, rowStart, rowEnd[, e, f]) that the pool can split by rows (a GEMV ignores the
 * trailing pair, which wasm exports drop).
 */
export type RowKernel = (a: number, b: number, c: number, d: number, rowStart: number, rowEnd: number, e: number, f: number) => void;

export class WorkerPool {
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_INTS * 4));
  private readonly workers: Worker[];
  private readonly index: Map<string, number>;

  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    readonly threads: number,
    ops: readonly string[],
    private readonly local: Record<string, RowKernel>,
  ) {
    this.index = new Map(ops.map((o, i) => [o, i]));
    this.workers = Array.from({ length: threads - 1 }, (_, i) => {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory, ctrl: this.ctrl, index: i + 1, threads, ops },
      });
      w.unref(); // idle workers never keep the process alive
      return w;
    });
  }

  /** Run kernel `op` over `rows` rows split across the threads; returns when every slice is done. */
  run(op: string, a: number, b: number, c: number, d: number, rows: number, e = 0, f = 0): void {
    const ctrl = this.ctrl;
    const k = this.index.get(op);
    if (k === undefined) throw new Error(`pool: ${op} is not a row kernel`);
    ctrl[OP] = k;
    ctrl[ARGS] = a;
    ctrl[ARGS + 1] = b;
    ctrl[ARGS + 2] = c;
    ctrl[ARGS + 3] = d;
    ctrl[ROWS] = rows;
    ctrl[EXTRA] = e;
    ctrl[EXTRA + 1] = f;
    Atomics.store(ctrl, DONE, 0);
    Atomics.add(ctrl, GEN, 1);
    Atomics.notify(ctrl, GEN);
    const per = Math.ceil(rows / this.threads / 4) * 4;
    this.local[op](a, b, c, d, 0, Math.min(rows, per), e, f);
    for (let done = Atomics.load(ctrl, DONE); done < this.threads - 1; done = Atomics.load(ctrl, DONE)) {
      Atomics.wait(ctrl, DONE, done);
    }
  }

  close(): void {
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.add(this.ctrl, GEN, 1);
    Atomics.notify(this.ctrl, GEN);
    for (const w of this.workers) void w.terminate();
  }
}
