// The predictor's hand-written backward passes against central finite differences, in f64: each piece (linear,
// ReLU, BCE with logits) and the whole minibatch loss. In f64 a central difference with step 1e-6 is off by
// ~step²·f''' + 2^-52·|f|/step ≈ 1e-10 here, so 1e-6 (relative to max(1, |gradient|)) leaves a wide margin while
// any wrong term (a missing factor, a transposed index) is off by O(1). Then the engine's SIMD linear layer
// against the plain-TS one, and one AdamW step against its closed form.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { AdamW } from "../eval/predictor/adamw";
import { EngineLinear } from "../eval/predictor/engine-linear";
import { bceBackward, bceForward, reluBackward, reluForward, TS_LINEAR, type Floats } from "../eval/predictor/layers";
import { allocParams, paramList, Workspace, type LowRankShape } from "../eval/predictor/low-rank";

const STEP = 1e-6;
const TOL = 1e-6;

/** Central difference of f at every entry of v, compared with the analytic gradient g. */
function expectGradient(f: () => number, v: Floats, g: Floats): void {
  for (let i = 0; i < v.length; i++) {
    const keep = v[i];
    v[i] = keep + STEP;
    const up = f();
    v[i] = keep - STEP;
    const down = f();
    v[i] = keep;
    expect(Math.abs((up - down) / (2 * STEP) - g[i])).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(g[i])));
  }
}

const vec = (n: number, bound = 2) => fc.float64Array({ minLength: n, maxLength: n, min: -bound, max: bound, noNaN: true });
const dims = fc.record({ B: fc.integer({ min: 1, max: 4 }), I: fc.integer({ min: 1, max: 6 }), O: fc.integer({ min: 1, max: 6 }) });
const dot = (a: Floats, b: Floats) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

describe("backward pieces vs finite differences (f64)", () => {
  test("linear: dinp, dw and dbias of L = Σ c ⊙ (inp·wᵀ + bias)", () => {
    fc.assert(
      fc.property(dims.chain((d) => fc.tuple(fc.constant(d), vec(d.B * d.I), vec(d.O * d.I), vec(d.O), vec(d.B * d.O))),
        ([{ B, I, O }, inp, w, bias, c]) => {
          const out = new Float64Array(B * O);
          const L = () => (TS_LINEAR.forward(out, inp, w, bias, B, I, O), dot(out, c));
          const [dinp, dw, db] = [new Float64Array(B * I), new Float64Array(O * I), new Float64Array(O)];
          TS_LINEAR.backward(dinp, dw, db, c, inp, w, B, I, O);
          expectGradient(L, inp, dinp);
          expectGradient(L, w, dw);
          expectGradient(L, bias, db);
        }),
      { numRuns: 60 },
    );
  });

  test("ReLU: dinp of L = Σ c ⊙ relu(x), away from the kink", () => {
    // Inputs pushed at least 1e-3 away from 0, so that no difference step crosses the kink.
    const awayFromZero = (a: Float64Array) => a.map((v) => v + (v < 0 ? -1e-3 : 1e-3));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }).chain((n) => fc.tuple(vec(n).map(awayFromZero), vec(n))), ([x, c]) => {
        const y = new Float64Array(x.length);
        const L = () => (reluForward(y, x, x.length), dot(y, c));
        const dx = new Float64Array(x.length);
        reluBackward(dx, c, x, x.length);
        expectGradient(L, x, dx);
      }),
      { numRuns: 60 },
    );
  });

  test("weighted BCE with logits: ds of scale · Σ bce(s, y)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }).chain((n) => fc.tuple(vec(n, 30), fc.uint8Array({ minLength: n, maxLength: n, max: 1 }))),
        fc.double({ min: 0.05, max: 20, noNaN: true }), fc.double({ min: 0.01, max: 2, noNaN: true }), ([s, y], pw, scale) => {
          const ds = new Float64Array(s.length);
          bceBackward(ds, s, y, pw, scale, s.length);
          expectGradient(() => scale * bceForward(s, y, pw, s.length), s, ds);
        }),
      { numRuns: 100 },
    );
  });

  test("BCE is stable at large logits: finite loss, gradients in [-pw, 1]", () => {
    const s = Float64Array.from([-800, 800, -800, 800]);
    const y = Uint8Array.from([1, 1, 0, 0]);
    expect(bceForward(s, y, 2, 4)).toBeCloseTo(2 * 800 + 800, 9);
    const ds = new Float64Array(4);
    bceBackward(ds, s, y, 2, 1, 4);
    expect(Array.from(ds)).toEqual([-2, 0, 0, 1]);
  });

  for (const sigma of ["identity", "relu"] as const) {
    test(`the whole predictor loss (σ ${sigma}): every parameter's gradient`, () => {
      fc.assert(
        fc.property(
          fc.record({ dim: fc.integer({ min: 1, max: 5 }), hidden: fc.integer({ min: 1, max: 6 }), rank: fc.integer({ min: 1, max: 4 }),
            B: fc.integer({ min: 1, max: 3 }) }).chain((d) => fc.tuple(fc.constant(d), vec(d.B * d.dim),
            fc.uint8Array({ minLength: d.B * d.hidden, maxLength: d.B * d.hidden, max: 1 }),
            vec(d.rank * d.dim + d.rank + d.hidden * d.rank + d.hidden, 1.5))),
          fc.double({ min: 0.1, max: 10, noNaN: true }),
          ([{ dim, hidden, rank, B }, x, y, values], pw) => {
            const shape: LowRankShape = { dim, hidden, rank, sigma };
            const f64 = (n: number) => new Float64Array(n);
            const p = allocParams(shape, f64);
            let at = 0;
            for (const t of paramList(p)) t.set(values.subarray(at, (at += t.length)));
            const ws = new Workspace(shape, B, f64);
            ws.forward(p, x, B);
            if (sigma === "relu") fc.pre(Array.from(ws.z1.subarray(0, B * rank)).every((z) => Math.abs(z) > 1e-3));
            const grads = allocParams(shape, f64);
            ws.backward(p, x, y, B, pw, grads);
            const L = () => (ws.forward(p, x, B), ws.loss(y, B, pw));
            paramList(p).forEach((t, k) => expectGradient(L, t, paramList(grads)[k]));
          },
        ),
        { numRuns: 80 },
      );
    });
  }
});

describe("the engine's linear layer", () => {
  const lin = new EngineLinear(8 << 20, 9, 40);

  test("forward and backward equal the plain-TS layer to f32 rounding", () => {
    fc.assert(
      fc.property(fc.record({ B: fc.integer({ min: 1, max: 9 }), I: fc.integer({ min: 1, max: 40 }), O: fc.integer({ min: 1, max: 40 }) }),
        fc.nat(1000), ({ B, I, O }, seed) => {
          const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.9 + k));
          const put = (v: Float32Array) => {
            const t = lin.alloc(v.length);
            t.set(v);
            return t;
          };
          const [inp, w, bias, dout] = [put(values(B * I, 1)), put(values(O * I, 2)), put(values(O, 3)), put(values(B * O, 4))];
          const f64 = (a: Float32Array) => Float64Array.from(a);
          const ref = { out: new Float64Array(B * O), dinp: new Float64Array(B * I), dw: new Float64Array(O * I), db: new Float64Array(O) };
          TS_LINEAR.forward(ref.out, f64(inp), f64(w), f64(bias), B, I, O);
          TS_LINEAR.backward(ref.dinp, ref.dw, ref.db, f64(dout), f64(inp), f64(w), B, I, O);
          const got = { out: lin.alloc(B * O), dinp: lin.alloc(B * I), dw: lin.alloc(O * I), db: lin.alloc(O) };
          lin.forward(got.out, inp, w, bias, B, I, O);
          lin.backward(got.dinp, got.dw, got.db, dout, inp, w, B, I, O);
          // Each value sums at most max(B, I, O) + 1 products of magnitude <= 1 in f32: error <= n²·2^-24.
          const tol = (Math.max(B, I, O) + 1) ** 2 * 2 ** -24;
          for (const k of ["out", "dinp", "dw", "db"] as const) got[k].forEach((v, i) => expect(Math.abs(v - ref[k][i])).toBeLessThanOrEqual(tol));
        }),
      { numRuns: 100 },
    );
  });

  test("buffers outside its engine are refused", () => {
    const a = new Float32Array(4);
    expect(() => lin.forward(a, a, a, a, 1, 2, 2)).toThrow(/views of its engine/);
  });
});

test("AdamW's first step is lr·sign(g) plus decoupled decay on weights only", () => {
  const w = Float64Array.from([1, -2, 0.5]);
  const b = Float64Array.from([1, -2]);
  const opt = new AdamW([w, b], [true, false], { lr: 0.1, weightDecay: 0.5, eps: 0 });
  opt.step([Float64Array.from([3, -0.001, 2]), Float64Array.from([-4, 1e-3])]);
  // bias-corrected m̂ = g and v̂ = g², so the step is lr·g/|g|; decay multiplies by 1 − lr·wd = 0.95 first.
  [0.95 - 0.1, -1.9 + 0.1, 0.475 - 0.1].forEach((v, i) => expect(w[i]).toBeCloseTo(v, 12));
  [1 + 0.1, -2 - 0.1].forEach((v, i) => expect(b[i]).toBeCloseTo(v, 12));
});
