// Teacher-generated training text (dynact relufy --synthetic): a frozen f32 model writes stories from BOS,
// sampling at temperature 1 (models/sampler.ts), until it emits BOS or EOS or fills its context (at most
// MAX_STORY_POSITIONS: a header's context length, up to 2^24, sized every stream's cache and a table of its positions,
// and a story that never ended ran that many steps — 2^20 for a tiny GGUF claiming them). `streams`
// stories are decoded side by side so the products are GEMMs over their rows (one token of every stream per
// step) instead of one GEMV per token; each stream attends over its own KV cache (the inference attention op)
// and starts a new story from BOS when its story ends. Stories are returned in the order they end. The step is
// LlamaModel.forward's math over the engine's ops; LlamaModel itself holds one sequence, not B at their own
// positions.
// Deterministic: one seeded sampler serves the streams in a fixed order, and every stream's arithmetic is its own.
import { Engine } from "../../engine/engine";
import { attention } from "../../engine/ops/attention";
import { add, mul } from "../../engine/ops/elementwise";
import { matmul } from "../../engine/ops/matmul";
import { rmsnorm } from "../../engine/ops/rmsnorm";
import { rope } from "../../engine/ops/rope";
import type { Tensor } from "../../engine/tensor";
import { ACTIVATION_MODULES } from "../activation";
import { canonicalShapes } from "../checkpoint";
import { headSize, kvDim, type LlamaConfig } from "../config";
import { ropeAngles } from "../rope";
import { Sampler } from "../sampler";

export interface SyntheticOptions {
  /** Stop once the finished stories hold at least this many tokens. */
  tokens: number;
  /** Sampler seed: any integer from 0 to 2^32 − 1. */
  seed: number;
  bos: number;
  eos: number;
  /** Stories decoded side by side (default 64). */
  streams?: number;
  /** Called after each step with the tokens of the finished stories so far. */
  onProgress?: (tokens: number) => void;
}

const FLOAT_ALIGN = 64; // bytes of alignment slack per tensor in the arena

/** The longest story: far beyond the stories a teacher writes (TinyStories' run to a few hundred tokens). */
export const MAX_STORY_POSITIONS = 2048;

/**
 * Stories (token ids after BOS, without the BOS or EOS that ended them) from the model given by `tensor` (canonical
 * names, as buildTrainModel takes them), totalling at least opts.tokens.
 */
export function generateStories(
  config: LlamaConfig, tied: boolean, tensor: (name: string) => ArrayLike<number>, opts: SyntheticOptions,
): number[][] {
  const c = config;
  const B = opts.streams ?? 64, S = Math.min(c.seqLen, MAX_STORY_POSITIONS), D = c.dim, KV = kvDim(c), Hd = c.hiddenDim, V = c.vocabSize;
  const hs = headSize(c), L = c.nLayers;
  const shapes = canonicalShapes(c);
  const weightFloats = [...shapes].filter(([name]) => !(tied && name === "output")).map(([, s]) => s.reduce((a, b) => a * b, 1));
  const bufferFloats = [B * D, B * D, B * D, B * D, B * KV, B * KV, B * Hd, B * Hd, B * V, c.nHeads * S, S * hs, S * hs,
    ...Array.from({ length: 2 * L }, () => B * S * KV)];
  const engine = Engine.create([...weightFloats, ...bufferFloats].reduce((sum, n) => sum + 4 * n + FLOAT_ALIGN, 0) + FLOAT_ALIGN);
  const weight = (name: string) => engine.from(tensor(name), shapes.get(name)!);
  const embed = weight("token_embd");
  const layers = Array.from({ length: L }, (_, l) => {
    const p = (n: string) => weight(`blk.${l}.${n}`);
    return { attnNorm: p("attn_norm"), q: p("attn_q"), k: p("attn_k"), v: p("attn_v"), o: p("attn_output"),
      ffnNorm: p("ffn_norm"), gate: p("ffn_gate"), up: p("ffn_up"), down: p("ffn_down") };
  });
  const finalNorm = weight("output_norm");
  const output = tied ? embed : weight("output");
  const activation = ACTIVATION_MODULES[c.activation];
  const buf = (...shape: number[]) => engine.tensor(shape);
  const [x, xb, q, att] = [buf(B, D), buf(B, D), buf(B, D), buf(B, D)];
  const [kNew, vNew] = [buf(B, KV), buf(B, KV)];
  const [g, u] = [buf(B, Hd), buf(B, Hd)];
  const logits = buf(B, V);
  const scores = buf(c.nHeads, S);
  const angles = ropeAngles(S, hs, c.ropeTheta, c.ropeScaling);
  const cos = engine.from(angles.cos, [S, hs / 2]), sin = engine.from(angles.sin, [S, hs / 2]);
  const kCache = Array.from({ length: L }, () => buf(B * S, KV));
  const vCache = Array.from({ length: L }, () => buf(B * S, KV));
  // Views made once (the loop below allocates nothing per step): each stream's rows, its caches, the RoPE rows.
  const rowsOf = (t: Tensor) => Array.from({ length: B }, (_, b) => t.row(b));
  const [xR, xbR, qR, attR, kNewR] = [x, xb, q, att, kNew].map(rowsOf);
  const streamCache = (caches: Tensor[]) => caches.map((t) => Array.from({ length: B }, (_, b) => t.rows(b * S, S)));
  const [kStream, vStream] = [streamCache(kCache), streamCache(vCache)];
  const [cosR, sinR] = [cos, sin].map((t) => Array.from({ length: S }, (_, p) => t.row(p)));
  const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs };

  const sampler = new Sampler(V, { temperature: 1, topP: 1, seed: 2 ** 52 + opts.seed });
  const token = new Int32Array(B).fill(opts.bos);
  const pos = new Int32Array(B);
  const current: number[][] = Array.from({ length: B }, () => []);
  const stories: number[][] = [];
  let total = 0;
  const xs = x.f32(), embedF = embed.f32(), kNewF = kNew.f32(), vNewF = vNew.f32(), logitsF = logits.f32();
  const kF = kCache.map((t) => t.f32()), vF = vCache.map((t) => t.f32());
  while (total < opts.tokens) {
    for (let b = 0; b < B; b++) xs.set(embedF.subarray(token[b] * D, (token[b] + 1) * D), b * D);
    for (let l = 0; l < L; l++) {
      const lw = layers[l];
      for (let b = 0; b < B; b++) rmsnorm(xbR[b], xR[b], lw.attnNorm, c.normEps);
      matmul(q, lw.q, xb);
      matmul(kNew, lw.k, xb);
      matmul(vNew, lw.v, xb);
      for (let b = 0; b < B; b++) {
        const p = pos[b];
        rope(qR[b], hs, cosR[p], sinR[p]);
        rope(kNewR[b], hs, cosR[p], sinR[p]);
        kF[l].set(kNewF.subarray(b * KV, (b + 1) * KV), (b * S + p) * KV);
        vF[l].set(vNewF.subarray(b * KV, (b + 1) * KV), (b * S + p) * KV);
        attention(attR[b], qR[b], kStream[l][b], vStream[l][b], scores, shape, p + 1);
      }
      matmul(xb, lw.o, att);
      add(x, x, xb);
      for (let b = 0; b < B; b++) rmsnorm(xbR[b], xR[b], lw.ffnNorm, c.normEps);
      matmul(g, lw.gate, xb);
      matmul(u, lw.up, xb);
      activation.apply(g, g);
      mul(g, g, u);
      matmul(xb, lw.down, g);
      add(x, x, xb);
    }
    for (let b = 0; b < B; b++) rmsnorm(xR[b], xR[b], finalNorm, c.normEps);
    matmul(logits, output, x);
    for (let b = 0; b < B; b++) {
      const next = sampler.sample(logitsF.subarray(b * V, (b + 1) * V));
      const ended = next === opts.bos || next === opts.eos;
      if (!ended) current[b].push(next);
      if (ended || pos[b] + 1 >= S) {
        if (current[b].length > 0) {
          stories.push(current[b]);
          total += current[b].length;
        }
        current[b] = [];
        token[b] = opts.bos;
        pos[b] = 0;
      } else {
        token[b] = next;
        pos[b]++;
      }
    }
    opts.onProgress?.(total);
  }
  return stories;
}
