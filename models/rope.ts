// RoPE angles for every position, computed once per model: cos/sin of pos·θ^(-2j/headSize) for j < headSize/2.
// Rounded to f32 at each step as llama2.c's run.c computes them, so both engines rotate by the same angles.
import type { Engine } from "../engine/engine";
import type { Tensor } from "../engine/tensor";
import type { Llama3RopeScaling, LlamaConfig } from "./config";

type RopeScaling = NonNullable<LlamaConfig["ropeScaling"]>;

export class RopeTable {
  readonly cos: Tensor;
  readonly sin: Tensor;

  constructor(engine: Engine, seqLen: number, headSize: number, theta: number, scaling?: RopeScaling) {
    const { cos, sin } = ropeAngles(seqLen, headSize, theta, scaling);
    this.cos = engine.from(cos, [seqLen, headSize / 2]);
    this.sin = engine.from(sin, [seqLen, headSize / 2]);
  }

  static bytes(seqLen: number, headSize: number): number {
    return 2 * (seqLen * (headSize / 2) * 4 + 64);
  }
}

/** cos/sin tables [seqLen, headSize/2] (also used by the trainer, so both rotate by the same angles). */
export function ropeAngles(
  seqLen: number, headSize: number, theta: number, scaling?: RopeScaling,
): { cos: Float32Array; sin: Float32Array } {
  const half = headSize / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let j = 0; j < half; j++) {
    const base = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headSize))));
    const freq = scaling?.type === "divisors" ? Math.fround(base / scaling.divisors[j]!)
      : scaling ? Math.fround(llama3Frequency(base, scaling)) : base;
    for (let pos = 0; pos < seqLen; pos++) {
      const angle = Math.fround(pos * freq);
      cos[pos * half + j] = Math.cos(angle);
      sin[pos * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
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
