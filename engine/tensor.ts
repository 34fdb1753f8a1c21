// A typed view into engine memory: dtype, shape and byte offset. Tensors own no memory; the arena does.
import { tensorBytes, type DType } from "./dtype";
import type { Engine } from "./engine";
import { ShapeError } from "./errors";

export type { DType };

export class Tensor {
  readonly size: number;

  constructor(
    readonly engine: Engine,
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly offset: number,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  get bytes(): number {
    return tensorBytes(this.dtype, this.shape);
  }

  /** A live Float32Array over this f32 tensor's memory (valid as long as the engine lives). */
  f32(): Float32Array {
    if (this.dtype !== "f32") throw new ShapeError(`f32 view of a ${this.dtype} tensor`);
    return new Float32Array(this.engine.memory.buffer, this.offset, this.size);
  }

  /** A live Int32Array over this i32 tensor's memory. */
  i32(): Int32Array {
    if (this.dtype !== "i32") throw new ShapeError(`i32 view of a ${this.dtype} tensor`);
    return new Int32Array(this.engine.memory.buffer, this.offset, this.size);
  }

  /** A live Uint8Array over this u8 tensor's memory. */
  u8(): Uint8Array {
    if (this.dtype !== "u8") throw new ShapeError(`u8 view of a ${this.dtype} tensor`);
    return new Uint8Array(this.engine.memory.buffer, this.offset, this.size);
  }

  /** Elements [start, start + count) of a 1-D tensor, as a view. */
  slice(start: number, count: number): Tensor {
    if (this.shape.length !== 1 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 ||
      start + count > this.size || this.dtype !== "f32") {
      throw new ShapeError(`slice [${start}, ${start + count}) of a ${this.dtype} tensor of shape [${this.shape.join(", ")}]`);
    }
    return new Tensor(this.engine, this.dtype, [count], this.offset + 4 * start);
  }

  /** The raw bytes, for loaders that read a file straight into engine memory. */
  bytesView(): Uint8Array {
    return new Uint8Array(this.engine.memory.buffer, this.offset, this.bytes);
  }

  /** A copy of the contents. */
  read(): Float32Array<ArrayBuffer> {
    return new Float32Array(this.f32());
  }

  write(values: ArrayLike<number>): void {
    if (values.length !== this.size) {
      throw new ShapeError(`write of ${values.length} values into a tensor of ${this.size}`);
    }
    this.f32().set(values);
  }

  copyFrom(src: Tensor): void {
    if (src.size !== this.size || src.dtype !== this.dtype) {
      throw new ShapeError(`copy of [${src.shape.join(", ")}] into [${this.shape.join(", ")}]`);
    }
    this.bytesView().set(src.bytesView());
  }

  /** Row i of a 2-D (or higher) tensor, as a tensor of shape[1:]. */
  row(i: number): Tensor {
    if (this.shape.length < 2 || i < 0 || i >= this.shape[0]) {
      throw new ShapeError(`row ${i} of a ${this.dtype} tensor of shape [${this.shape.join(", ")}]`);
    }
    const inner = this.shape.slice(1);
    return new Tensor(this.engine, this.dtype, inner, this.offset + i * (this.bytes / this.shape[0]));
  }

  /** Rows [start, start + count) of a 2-D (or higher) tensor, as a view of shape [count, ...shape[1:]]. */
  rows(start: number, count: number): Tensor {
    if (this.shape.length < 2 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 ||
      start + count > this.shape[0]) {
      throw new ShapeError(`rows [${start}, ${start + count}) of a ${this.dtype} tensor of shape [${this.shape.join(", ")}]`);
    }
    return new Tensor(this.engine, this.dtype, [count, ...this.shape.slice(1)], this.offset + start * (this.bytes / this.shape[0]));
  }

  /** The first `count` elements of a 1-D tensor, as a view. */
  prefix(count: number): Tensor {
    if (this.shape.length !== 1 || !Number.isInteger(count) || count < 0 || count > this.size) {
      throw new ShapeError(`prefix ${count} of a tensor of shape [${this.shape.join(", ")}]`);
    }
    return new Tensor(this.engine, this.dtype, [count], this.offset);
  }

  /** The same memory seen with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor {
    const t = new Tensor(this.engine, this.dtype, shape, this.offset);
    if (t.size !== this.size) {
      throw new ShapeError(`reshape of [${this.shape.join(", ")}] to [${shape.join(", ")}]`);
    }
    return t;
  }
}
