// Every hand-written backward pass of models/train against central finite differences of its forward pass, on
// random shapes and values (fast-check). The checks run the same functions on f64 buffers, where finite
// differences are exact to ~1e-10 (see expectGradient), so the bound 1e-6 only fails on a wrong gradient.
// Each backward must also accumulate: gradients start from random values and the increment is compared.
// The wasm ops (f32 kernels) are then compared with the TS ops they replace.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { ropeAngles } from "../models/rope";
import { activationForward, reluBackwardInPlace } from "../models/train/activation";
import { attentionBackward, attentionForward, type AttentionShape } from "../models/train/attention";
import { crossEntropyBackward, crossEntropyForward } from "../models/train/cross-entropy";
import { distillForward } from "../models/train/distill";
import { embeddingBackward, embeddingForward } from "../models/train/embedding";
import type { Floats } from "../models/train/floats";
import { absSum, gatedBackward, gatedForward } from "../models/train/gated-mlp";
import { matmulBackward, matmulForward } from "../models/train/matmul";
import { tsOps } from "../models/train/ops";
import { rmsnormBackward, rmsnormForward } from "../models/train/rmsnorm";
import { ropeBackward, ropeForward } from "../models/train/rope";
import { WasmOps } from "../models/train/wasm-ops";
import { dot, expectGradient, uniform } from "./train-util";

const RUNS = 40;
const seed = fc.nat(1 << 20);

/** Run `backward` on gradients that start at random values; return what it added. */
function increments(sizes: number[], s: number, backward: (...grads: Float64Array[]) => void): Float64Array[] {
  const base = sizes.map((n, i) => uniform(n, s + 100 + i));
  const grads = base.map((b) => b.slice());
  backward(...grads);
  return grads.map((g, i) => g.map((v, j) => v - base[i][j]));
}

test("matmul: dx and dw", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), seed,
    (N, I, O, s) => {
      const x = uniform(N * I, s), w = uniform(O * I, s + 1), dy = uniform(N * O, s + 2);
      const y = new Float64Array(N * O);
      const f = () => (matmulForward(y, x, w, N, I, O), dot(y, dy));
      const [dx, dw] = increments([N * I, O * I], s, (dx, dw) => matmulBackward(dx, dw, dy, x, w, N, I, O));
      expectGradient(f, x, dx, "dx");
      expectGradient(f, w, dw, "dw");
    }), { numRuns: RUNS });
});

test("rmsnorm: dx and dw", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 9 }), seed, (N, D, s) => {
    const x = uniform(N * D, s), w = uniform(D, s + 1).map((v) => 1 + 0.5 * v), dy = uniform(N * D, s + 2);
    const y = new Float64Array(N * D), rstd = new Float64Array(N);
    const f = () => (rmsnormForward(y, rstd, x, w, N, D, 1e-5), dot(y, dy));
    f();
    const [dx, dw] = increments([N * D, D], s, (dx, dw) => rmsnormBackward(dx, dw, dy, x, w, rstd, N, D));
    expectGradient(f, x, dx, "dx");
    expectGradient(f, w, dw, "dw");
  }), { numRuns: RUNS });
});

test("rope: dx (adjacent pairs, the angles of models/rope.ts, position = row mod T)", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }),
    fc.constantFrom(2, 4, 6), seed, (B, T, H, hs, s) => {
      const N = B * T, width = H * hs;
      const angles = ropeAngles(T, hs, 10000);
      const x = uniform(N * width, s), dy = uniform(N * width, s + 1);
      const f = () => {
        const y = x.slice();
        ropeForward(y, N, T, H, hs, angles);
        return dot(y, dy);
      };
      const dx = dy.slice();
      ropeBackward(dx, N, T, H, hs, angles);
      expectGradient(f, x, dx, "dx");
    }), { numRuns: RUNS });
});

const attentionShapes = fc.record({
  B: fc.integer({ min: 1, max: 2 }), T: fc.integer({ min: 1, max: 6 }), nKvHeads: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 3 }), headSize: fc.constantFrom(2, 4, 6),
}).map(({ group, ...a }): AttentionShape => ({ ...a, nHeads: a.nKvHeads * group }));

test("causal GQA attention: dq, dk and dv", () => {
  fc.assert(fc.property(attentionShapes, seed, (a, s) => {
    const N = a.B * a.T, qw = a.nHeads * a.headSize, kvw = a.nKvHeads * a.headSize;
    const q = uniform(N * qw, s, 2), k = uniform(N * kvw, s + 1, 2), v = uniform(N * kvw, s + 2), dout = uniform(N * qw, s + 3);
    const out = new Float64Array(N * qw), lse = new Float64Array(N * a.nHeads), scratch = new Float64Array(a.T);
    const f = () => (attentionForward(out, lse, q, k, v, a, scratch), dot(out, dout));
    f();
    const [dq, dk, dv] = increments([N * qw, N * kvw, N * kvw], s,
      (dq, dk, dv) => attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, a, scratch));
    expectGradient(f, q, dq, "dq");
    expectGradient(f, k, dk, "dk");
    expectGradient(f, v, dv, "dv");
  }), { numRuns: RUNS });
});

test("gated MLP act(g) ⊙ u with the L1 penalty: dg and du, for SiLU and ReLU", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.constantFrom("silu", "relu") as fc.Arbitrary<"silu" | "relu">,
    fc.constantFrom(0, 0.7), seed, (n, act, l1, s) => {
      // Inputs at least 0.05 from ReLU's kink, which a step of 1e-6 then never crosses.
      const g = uniform(n, s, 3).map((x) => Math.sign(x) * (0.05 + Math.abs(x)));
      const u = uniform(n, s + 1), dh = uniform(n, s + 2);
      const h = new Float64Array(n), a = new Float64Array(n);
      const f = () => (gatedForward(h, a, g, u, n, act), dot(h, dh) + l1 * absSum(a, n));
      f();
      const [dg, du] = increments([n, n], s, (dg, du) => gatedBackward(dg, du, dh, g, u, a, n, act, l1));
      expectGradient(f, g, dg, "dg");
      expectGradient(f, u, du, "du");
    }), { numRuns: RUNS });
});

test("ReLU (stage 2, after the norms): dx", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), seed, (n, s) => {
    const x = uniform(n, s, 3).map((v) => Math.sign(v) * (0.05 + Math.abs(v))), dy = uniform(n, s + 1);
    const y = new Float64Array(n);
    const f = () => (activationForward(y, x, n, "relu"), dot(y, dy));
    f();
    const dx = dy.slice();
    reluBackwardInPlace(dx, y, n);
    expectGradient(f, x, dx, "dx");
  }), { numRuns: RUNS });
});

test("embedding: dtable (repeated tokens add up)", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 8 }), seed,
    (V, D, N, s) => {
      const table = uniform(V * D, s), dy = uniform(N * D, s + 1);
      const tokens = Int32Array.from(uniform(N, s + 2), (r) => Math.floor(((r + 1) / 2) * V) % V);
      const x = new Float64Array(N * D);
      const f = () => (embeddingForward(x, table, tokens, N, D), dot(x, dy));
      const [dt] = increments([V * D], s, (dt) => embeddingBackward(dt, dy, tokens, N, D));
      expectGradient(f, table, dt, "dtable");
    }), { numRuns: RUNS });
});

test("cross-entropy: dlogits", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 9 }), seed, (N, V, s) => {
    const logits = uniform(N * V, s, 4);
    const targets = Int32Array.from(uniform(N, s + 1), (r) => Math.floor(((r + 1) / 2) * V) % V);
    const losses = new Float64Array(N);
    const scale = 1 / N;
    const f = () => scale * crossEntropyForward(logits.slice(), losses, targets, N, V);
    const d = logits.slice();
    crossEntropyForward(d, losses, targets, N, V);
    crossEntropyBackward(d, targets, N, V, scale);
    expectGradient(f, logits, d, "dlogits");
  }), { numRuns: RUNS });
});

test("distillation (1 − α)·CE + α·τ²·KL(teacher_τ ‖ student_τ): dlogits, for α in [0, 1] and τ ≠ 1", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 9 }), fc.double({ min: 0, max: 1, noNaN: true }),
    fc.double({ min: 0.5, max: 4, noNaN: true }), seed, (N, V, alpha, temp, s) => {
      const logits = uniform(N * V, s, 4), teacher = uniform(N * V, s + 7, 4);
      const targets = Int32Array.from(uniform(N, s + 1), (r) => Math.floor(((r + 1) / 2) * V) % V);
      const losses = new Float64Array(N);
      const f = () => {
        const r = distillForward(logits.slice(), teacher, losses, targets, N, V, alpha, temp, 1);
        return ((1 - alpha) * r.ce + alpha * r.kl) / N;
      };
      const d = logits.slice();
      distillForward(d, teacher, losses, targets, N, V, alpha, temp, 1);
      expectGradient(f, logits, d.map((g) => g / N), "dlogits");
    }), { numRuns: RUNS });
});

test("distillation's terms: CE equals crossEntropyForward's, KL is 0 against itself and equals Σ q·log(q/p) otherwise", () => {
  const N = 3, V = 7, temp = 2;
  const logits = uniform(N * V, 5, 3), teacher = uniform(N * V, 6, 3);
  const targets = Int32Array.of(0, 6, 3);
  const ce = new Float64Array(N), ref = new Float64Array(N);
  const same = distillForward(logits.slice(), logits, ce, targets, N, V, 0.5, temp, 1);
  expect(same.ce).toBeCloseTo(crossEntropyForward(logits.slice(), ref, targets, N, V), 12);
  expect(Array.from(ce)).toEqual(Array.from(ref).map((x) => expect.closeTo(x, 12)));
  expect(Math.abs(same.kl)).toBeLessThan(1e-12);
  const softmax = (x: Float64Array, o: number) => {
    const e = Array.from(x.subarray(o, o + V), (v) => Math.exp(v / temp));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  };
  let kl = 0;
  for (let n = 0; n < N; n++) {
    const p = softmax(logits, n * V), q = softmax(teacher, n * V);
    kl += temp * temp * q.reduce((sum, qi, i) => sum + qi * Math.log(qi / p[i]), 0);
  }
  expect(distillForward(logits.slice(), teacher, ce, targets, N, V, 0.3, temp, 1).kl).toBeCloseTo(kl, 10);
  // α = 0 is plain cross-entropy: the same gradient as crossEntropyBackward's.
  const d = logits.slice(), want = logits.slice();
  distillForward(d, teacher, ce, targets, N, V, 0, temp, 1);
  crossEntropyForward(want, ref, targets, N, V);
  crossEntropyBackward(want, targets, N, V, 1);
  expect(Array.from(d)).toEqual(Array.from(want).map((x) => expect.closeTo(x, 12)));
});

describe("wasm ops (f32 kernels) equal the TS ops (f64)", () => {
  const U = 2 ** -24;
  const MAX = 32 * 32;
  const ops = new WasmOps(WasmOps.floats(new Array(10).fill(MAX)), { rows: 16, width: 32, seq: 13, headSize: 6 });
  const ts = tsOps(Float64Array);
  // Ten buffers in training memory, reused by every run: slot i's first n values.
  const slots = Array.from({ length: 10 }, () => ops.alloc(MAX));
  const buf = (i: number, n: number) => slots[i].subarray(0, n);
  const f32 = (i: number, values: Float64Array) => {
    const a = buf(i, values.length);
    a.set(values);
    return a;
  };
  const absolute = (a: Float64Array) => a.map(Math.abs);
  /** |got − want| ≤ bound: bound[i] = γ·Σ|terms| of element i, γ = (K + 4)·u for K-term sums and the add. */
  function expectWithin(what: string, got: Floats, want: Floats, bound: Floats): void {
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= bound[i] + 1e-30)) throw new Error(`${what}[${i}]: ${got[i]} vs ${want[i]} (bound ${bound[i]})`);
    }
  }

  test("matmul forward and backward (error within the f32 dot-product bound)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 32 }), seed,
      (N, I, O, s) => {
        // The same f32 values on both sides, held in f64 on the TS side.
        const vals = [uniform(N * I, s), uniform(O * I, s + 1), uniform(N * O, s + 2), uniform(N * I, s + 3), uniform(O * I, s + 4)]
          .map((a) => Float64Array.from(a, Math.fround));
        const [x, w, dy, dx0, dw0] = vals;
        const y = buf(0, N * O), dx = f32(1, dx0), dw = f32(2, dw0), xf = f32(3, x), wf = f32(4, w);
        ops.matmulForward(y, xf, wf, N, I, O);
        ops.matmulBackward(dx, dw, f32(5, dy), xf, wf, N, I, O);
        const yRef = new Float64Array(N * O), dxRef = dx0.slice(), dwRef = dw0.slice();
        ts.matmulForward(yRef, x, w, N, I, O);
        ts.matmulBackward(dxRef, dwRef, dy, x, w, N, I, O);
        const yMag = new Float64Array(N * O), dxMag = absolute(dx0), dwMag = absolute(dw0);
        ts.matmulForward(yMag, absolute(x), absolute(w), N, I, O);
        ts.matmulBackward(dxMag, dwMag, absolute(dy), absolute(x), absolute(w), N, I, O);
        expectWithin("y", y, yRef, yMag.map((m) => (I + 4) * U * m));
        expectWithin("dx", dx, dxRef, dxMag.map((m) => (O + 4) * U * m));
        expectWithin("dw", dw, dwRef, dwMag.map((m) => (N + 4) * U * m));
      }), { numRuns: 100 });
  });

  test("attention forward and backward (several groups of 4 keys, partial groups masked)", () => {
    fc.assert(fc.property(attentionShapes.chain((a) => fc.integer({ min: 1, max: 13 }).map((T) => ({ ...a, T }))), seed, (a, s) => {
      const N = a.B * a.T, qw = a.nHeads * a.headSize, kvw = a.nKvHeads * a.headSize;
      const [q, k, v, dout, dq0, dk0, dv0] = [N * qw, N * kvw, N * kvw, N * qw, N * qw, N * kvw, N * kvw]
        .map((n, i) => Float64Array.from(uniform(n, s + i, 2), Math.fround));
      const out = buf(0, N * qw), lse = buf(1, N * a.nHeads);
      const [dq, dk, dv] = [f32(3, dq0), f32(4, dk0), f32(5, dv0)];
      const [qf, kf, vf] = [f32(6, q), f32(7, k), f32(8, v)];
      ops.attentionForward(out, lse, qf, kf, vf, a);
      ops.attentionBackward(dq, dk, dv, f32(9, dout), out, lse, qf, kf, vf, a);
      const outRef = new Float64Array(N * qw), lseRef = new Float64Array(N * a.nHeads);
      const [dqRef, dkRef, dvRef] = [dq0.slice(), dk0.slice(), dv0.slice()];
      ts.attentionForward(outRef, lseRef, q, k, v, a);
      ts.attentionBackward(dqRef, dkRef, dvRef, dout, outRef, lseRef, q, k, v, a);
      // Scores are hs-term dot products of values ≤ 2, softmax-weighted sums over ≤ 13 positions: the f32 results
      // carry a few hundred units of roundoff (u ≈ 6e-8), well inside 1e-5; a wrong index or stride is off by O(1).
      const tol = (ref: Floats) => ref.map((r) => 1e-5 * (1 + Math.abs(r)));
      expectWithin("out", out, outRef, tol(outRef));
      expectWithin("lse", lse, lseRef, tol(lseRef));
      expectWithin("dq", dq, dqRef, tol(dqRef));
      expectWithin("dk", dk, dkRef, tol(dkRef));
      expectWithin("dv", dv, dvRef, tol(dvRef));
    }), { numRuns: 100 });
  });

  test("buffers outside training memory are refused", () => {
    expect(() => ops.matmulForward(new Float32Array(1), new Float32Array(1), new Float32Array(1), 1, 1, 1)).toThrow(/training memory/);
  });
});
