// RoPE angles: cos/sin of pos·θ^(-2j/headSize) for j < headSize/2, rounded to f32 at each step as llama2.c's run.c
// computes them, so both engines rotate by the same angles. A model's table is filled as positions are reached: a
// header's context length (up to 2^24 positions) sizes the table's memory, which the memory check counts, but no
// loop runs over positions no token has used.
import type { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import type { Llama3RopeScaling, LlamaConfig } from "./config";

type RopeScaling = NonNullable<LlamaConfig["ropeScaling"]>;

// Rows computed at least per fill, so a sequence run token by token fills its table in a few calls.
const MIN_FILL = 64;

export class RopeTable {
  /** [seqLen, headSize/2]: rows 0 … ready-1 hold their angles (ensure() extends them). */
  readonly cos: Tensor;
  readonly sin: Tensor;
  private readonly freqs: Float64Array;
  private ready = 0;

  constructor(engine: Engine, readonly seqLen: number, headSize: number, theta: number, scaling?: RopeScaling) {
    this.freqs = ropeFrequencies(headSize, theta, scaling);
    this.cos = engine.tensor([seqLen, headSize / 2]);
    this.sin = engine.tensor([seqLen, headSize / 2]);
  }

  static bytes(seqLen: number, headSize: number): number {
    return 2 * (seqLen * (headSize / 2) * 4 + 64);
  }

  /** Positions whose rows hold their angles. */
  get rows(): number {
    return this.ready;
  }

  /** Make rows 0 … end-1 hold their angles (at least doubling what is filled, so positions run one by one fill in log steps). */
  ensure(end: number): void {
    if (end <= this.ready) return;
    const to = Math.min(this.seqLen, Math.max(end, 2 * this.ready, MIN_FILL));
    fillAngles(this.cos.f32(), this.sin.f32(), this.freqs, this.ready, to);
    this.ready = to;
  }
}

/** cos/sin tables [seqLen, headSize/2] (also used by the trainer, so both rotate by the same angles). */
export function ropeAngles(
  seqLen: number, headSize: number, theta: number, scaling?: RopeScaling,
): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(seqLen * (headSize / 2));
  const sin = new Float32Array(seqLen * (headSize / 2));
  fillAngles(cos, sin, ropeFrequencies(headSize, theta, scaling), 0, seqLen);
  return { cos, sin };
}

/** The f32 frequency of each of a head's headSize/2 pairs, scaled as the config says. */
function ropeFrequencies(headSize: number, theta: number, scaling?: RopeScaling): Float64Array {
  return Float64Array.from({ length: headSize / 2 }, (_, j) => {
    const base = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headSize))));
    return scaling?.type === "divisors" ? Math.fround(base / scaling.divisors[j]!)
      : scaling ? Math.fround(llama3Frequency(base, scaling)) : base;
  });
}

/** Rows from … to-1 of [positions, freqs.length] cos/sin tables. */
function fillAngles(cos: Float32Array, sin: Float32Array, freqs: Float64Array, from: number, to: number): void {
  const half = freqs.length;
  for (let pos = from; pos < to; pos++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos * freqs[j]!);
      cos[pos * half + j] = Math.cos(angle);
      sin[pos * half + j] = Math.sin(angle);
    }
  }
}

/** llama.cpp's rope_freqs for a llama3 scaling: base frequency / scaled frequency, per frequency of a head. */
export function llama3FreqFactors(headSize: number, theta: number, s: Llama3RopeScaling): Float32Array {
  return Float32Array.from({ length: headSize / 2 }, (_, j) => {
    const base = 1 / Math.pow(theta, (2 * j) / headSize);
    return base / llama3Frequency(base, s);
  });
}

/**
 * Llama 3.1's RoPE frequency scaling (transformers' _compute_llama3_parameters): wavelengths longer than the
 * pretraining context / lowFreqFactor are slowed by `factor`, those shorter than context / highFreqFactor are
 * kept, and the ones between are blended smoothly.
 */
export function llama3Frequency(freq: number, s: Llama3RopeScaling): number {
  const wavelen = (2 * Math.PI) / freq;
  if (wavelen < s.originalContext / s.highFreqFactor) return freq;
  if (wavelen > s.originalContext / s.lowFreqFactor) return freq / s.factor;
  const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return ((1 - smooth) * freq) / s.factor + smooth * freq;
}
