// Training math runs on f32 buffers; the same functions run on f64 buffers for exact gradient checks.
export type Floats = Float32Array | Float64Array;
export type FloatsCtor = new (length: number) => Floats;
