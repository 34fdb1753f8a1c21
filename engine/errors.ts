// Every error dynact raises on purpose is a DynactError: the CLI prints its message on one line and exits 1.
export class DynactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An op was called with tensors whose shapes or dtypes do not fit together. */
export class ShapeError extends DynactError {}

/** The wasm32 memory cannot hold what was asked for. */
export class MemoryLimitError extends DynactError {}
