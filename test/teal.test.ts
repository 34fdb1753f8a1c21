// TEAL (input-side magnitude sparsity): the kernel zeroes exactly the small entries; teal:0 is dense; thresholds
// calibrated on held-out text zero about the target fraction of each linear's input on the evaluation tokens.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { Engine } from "../engine/engine";
import { sparsify } from "../engine/ops/elementwise";
import type { Tensor } from "../engine/tensor";
import { calibrateTeal } from "../eval/teal";
import { perplexity } from "../eval/perplexity";
import { readTextTokens } from "../eval/text";
import { loadModel } from "../models/load";
import { TEAL_POINTS, type TealHook, type TealPoint } from "../models/teal";
import { haveAssets, shared } from "./assets";

test("sparsify zeroes exactly the entries with |x| <= t", () => {
  const engine = Engine.create(1 << 20);
  fc.assert(
    fc.property(fc.array(fc.float({ noNaN: true, min: -4, max: 4 }), { minLength: 1, maxLength: 70 }), fc.float({ noNaN: true, min: 0, max: 3 }), (xs, t) => {
      const x = engine.from(xs);
      sparsify(x, t);
      const f = Math.fround(t);
      expect(Array.from(x.f32())).toEqual(xs.map((v) => (Math.abs(v) <= f ? 0 : Math.fround(v))));
    }),
    { numRuns: 300 },
  );
  // Ties at t are zeroed (in the SIMD body and the scalar tail); t = -∞ keeps everything.
  const x = engine.from([1, -1, 0.5, 2, -1, 1, 3]);
  sparsify(x, 1);
  expect(Array.from(x.f32())).toEqual([0, 0, 0, 2, 0, 0, 3]);
  const y = engine.from([0, -2, 0.5]);
  sparsify(y, -Infinity);
  expect(Array.from(y.f32())).toEqual([0, -2, 0.5]);
});

describe.runIf(haveAssets("models/stories260K.bin", "models/tok512.bin", "data/tinystories_val.txt"))("on stories260K", () => {
  const { model, tokenizer } = loadModel(shared("models/stories260K.bin"), { tokenizer: shared("models/tok512.bin") });
  const ids = readTextTokens(shared("data/tinystories_val.txt"), tokenizer, 3072);
  const evalIds = ids.slice(0, 1024);
  const calibIds = ids.slice(1024);

  test("teal:0 reproduces dense exactly", () => {
    model.configureTeal(null);
    const dense = perplexity(model, evalIds.slice(0, 200), { ctx: 128 }).mean_nll;
    model.configureTeal(calibrateTeal(model, calibIds, 0, { ctx: 256 }));
    expect(perplexity(model, evalIds.slice(0, 200), { ctx: 128 }).mean_nll).toBe(dense);
    model.configureTeal(null);
  });

  test("teal:0.4 calibrated on held-out text zeroes about 40% of each input on the evaluation tokens", () => {
    const teal = calibrateTeal(model, calibIds, 0.4, { ctx: 256 });
    const zeros = TEAL_POINTS.map(() => [0, 0]);
    const counting: TealHook = {
      apply(l: number, point: TealPoint, x: Tensor) {
        teal.apply(l, point, x);
        const v = x.f32();
        zeros[point][0] += v.filter((a) => a === 0).length;
        zeros[point][1] += v.length;
      },
    };
    model.configureTeal(counting);
    perplexity(model, evalIds, { ctx: 256 });
    model.configureTeal(null);
    for (const [z, n] of zeros) expect(Math.abs(z / n - 0.4)).toBeLessThan(0.08);
  });
});
