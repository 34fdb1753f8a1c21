// Teacher-generated training text (dynact relufy --synthetic): a frozen f32 model writes stories from BOS,
// sampling at temperature 1 (models/sampler.ts), until it emits BOS or EOS or fills its context. `streams`
// stories are decoded side by side so the products are GEMMs over their rows (one token of every stream per
// step) instead of one GEMV per token; each stream attends over its own KV cache (the inference attention
// kernel) and starts a new story from BOS when its story ends. Stories are returned in the order they end.
// Deterministic: one seeded sampler serves the streams in a fixed order, and every stream's arithmetic is its own.
import { Engine } from "../../engine/engine";
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

/**
 * Stories (token ids after BOS, without the BOS or EOS that ended them) from the model given by `tensor` (canonical
 * names, as buildTrainModel takes them), totalling at least opts.tokens.
 */
export function generateStories(
  config: LlamaConfig, tied: boolean, tensor: (name: string) => ArrayLike<number>, opts: SyntheticOptions,
): number[][] {
  const c = config;
  if (c.activation !== "silu" && c.activation !== "relu") throw new Error(`synthetic text from a ${c.activation} MLP is not supported`);
  const B = opts.streams ?? 64, S = c.seqLen, D = c.dim, KV = kvDim(c), Hd = c.hiddenDim, V = c.vocabSize;
  const H = c.nHeads, hs = headSize(c), L = c.nLayers;
  const shapes = canonicalShapes(c);
  const weightFloats = [...shapes].filter(([name]) => !(tied && name === "output")).map(([, s]) => s.reduce((a, b) => a * b, 1));
  const bufferFloats = [B * D, B * D, B * D, B * D, B * KV, B * KV, B * Hd, B * Hd, B * V, H * S, S * hs, S * hs,
    ...Array.from({ length: 2 * L }, () => B * S * KV)];
  const all = [...weightFloats, ...bufferFloats];
  const engine = Engine.create(all.reduce((sum, n) => sum + 4 * n + FLOAT_ALIGN, 0) + FLOAT_ALIGN);
  const k = engine.kernels;
  const put = (name: string) => engine.from(tensor(name)).offset;
  const w = {
    embed: engine.from(tensor("token_embd")),
    layers: Array.from({ length: L }, (_, l) => {
      const p = (n: string) => put(`blk.${l}.${n}`);
      return { attnNorm: p("attn_norm"), q: p("attn_q"), k: p("attn_k"), v: p("attn_v"), o: p("attn_output"),
        ffnNorm: p("ffn_norm"), gate: p("ffn_gate"), up: p("ffn_up"), down: p("ffn_down") };
    }),
    norm: put("output_norm"),
  };
  const output = tied ? w.embed.offset : put("output");
  const embed = w.embed.f32();
  const buf = (n: number) => engine.tensor([n]);
  const [x, xb, q, att] = [B * D, B * D, B * D, B * D].map(buf);
  const [kNew, vNew] = [B * KV, B * KV].map(buf);
  const [g, u] = [B * Hd, B * Hd].map(buf);
  const logits = buf(B * V);
  const scores = buf(H * S);
  const { cos: cosTable, sin: sinTable } = ropeAngles(S, hs, c.ropeTheta, c.ropeScaling);
  const cos = engine.from(cosTable), sin = engine.from(sinTable);
  const kCache = Array.from({ length: L }, () => buf(B * S * KV));
  const vCache = Array.from({ length: L }, () => buf(B * S * KV));

  const sampler = new Sampler(V, { temperature: 1, topP: 1, seed: 2 ** 52 + opts.seed });
  const token = new Int32Array(B).fill(opts.bos);
  const pos = new Int32Array(B);
  const current: number[][] = Array.from({ length: B }, () => []);
  const stories: number[][] = [];
  let total = 0;
  const xs = x.f32(), kNewF = kNew.f32(), vNewF = vNew.f32(), logitsF = logits.f32();
  const kF = kCache.map((t) => t.f32()), vF = vCache.map((t) => t.f32());
  const row = (t: { offset: number }, b: number, width: number) => t.offset + 4 * b * width;
  const half = hs / 2;
  while (total < opts.tokens) {
    for (let b = 0; b < B; b++) xs.set(embed.subarray(token[b] * D, (token[b] + 1) * D), b * D);
    for (let l = 0; l < L; l++) {
      const lw = w.layers[l];
      for (let b = 0; b < B; b++) k.rmsnorm_f32(row(xb, b, D), row(x, b, D), lw.attnNorm, D, c.normEps);
      k.gemm_f32(q.offset, lw.q, xb.offset, D, 0, D, B, D);
      k.gemm_f32(kNew.offset, lw.k, xb.offset, D, 0, KV, B, KV);
      k.gemm_f32(vNew.offset, lw.v, xb.offset, D, 0, KV, B, KV);
      for (let b = 0; b < B; b++) {
        const p = pos[b];
        k.rope_f32(row(q, b, D), H, hs, cos.offset + 4 * p * half, sin.offset + 4 * p * half);
        k.rope_f32(row(kNew, b, KV), c.nKvHeads, hs, cos.offset + 4 * p * half, sin.offset + 4 * p * half);
        kF[l].set(kNewF.subarray(b * KV, (b + 1) * KV), (b * S + p) * KV);
        vF[l].set(vNewF.subarray(b * KV, (b + 1) * KV), (b * S + p) * KV);
        k.attention_f32(row(att, b, D), row(q, b, D), row(kCache[l], b, S * KV), row(vCache[l], b, S * KV), scores.offset,
          H, c.nKvHeads, hs, KV, p + 1, S, /* no head list: all H heads */ 0, H, /* no KV holes */ 0, 0);
      }
      k.gemm_f32(xb.offset, lw.o, att.offset, D, 0, D, B, D);
      k.add_f32(x.offset, x.offset, xb.offset, B * D);
      for (let b = 0; b < B; b++) k.rmsnorm_f32(row(xb, b, D), row(x, b, D), lw.ffnNorm, D, c.normEps);
      k.gemm_f32(g.offset, lw.gate, xb.offset, D, 0, Hd, B, Hd);
      k.gemm_f32(u.offset, lw.up, xb.offset, D, 0, Hd, B, Hd);
      if (c.activation === "silu") k.silu_f32(g.offset, g.offset, B * Hd);
      else k.relu_f32(g.offset, g.offset, B * Hd);
      k.mul_f32(g.offset, g.offset, u.offset, B * Hd);
      k.gemm_f32(xb.offset, lw.down, g.offset, Hd, 0, D, B, D);
      k.add_f32(x.offset, x.offset, xb.offset, B * D);
    }
    for (let b = 0; b < B; b++) k.rmsnorm_f32(row(x, b, D), row(x, b, D), w.norm, D, c.normEps);
    k.gemm_f32(logits.offset, output, x.offset, D, 0, V, B, V);
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
