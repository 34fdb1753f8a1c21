// Render bench/results/*.json as the Markdown tables of the README's Speed section (numbers exactly as measured).
import { existsSync, readFileSync } from "node:fs";

const dir = new URL("../bench/results/", import.meta.url);
// A missing or unfinished (empty) results file is left out.
const load = (name) => {
  try {
    return existsSync(new URL(name, dir)) ? JSON.parse(readFileSync(new URL(name, dir), "utf8")) : null;
  } catch {
    return null;
  }
};
const s = (x) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;
const out = [];
const table = (head, rows) => out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`), "");

for (const [file, title] of [["decode-f32.json", "Decode, f32"], ["decode-quant.json", "Decode, quantized (GGUF)"], ["decode-quant-1b.json", "Decode, quantized, 1B-class shape (GGUF)"], ["decode-threads.json", "Decode, 1 vs 2 threads"]]) {
  const r = load(file)?.decode;
  if (!r) continue;
  out.push(`**${title}** (tokens/s, greedy from BOS):`, "");
  table(["shape", "dtype", "threads", "dynact", "llama2.c", "ratio", "llama.cpp", "ratio"], r.map((d) => [
    d.shape, d.dtype, d.threads, s(d.tokens_per_second),
    d.llama2c_tokens_per_second ? s(d.llama2c_tokens_per_second) : "–", d.ratio_vs_llama2c ? `${d.ratio_vs_llama2c.toFixed(2)}×` : "–",
    d.llamacpp_tokens_per_second ? s(d.llamacpp_tokens_per_second) : "–", d.ratio_vs_llamacpp ? `${d.ratio_vs_llamacpp.toFixed(2)}×` : "–",
  ]));
}
const prefill = load("prefill.json")?.prefill;
if (prefill) {
  out.push("**Prompt processing**, 64 tokens, f32 (tokens/s):", "");
  table(["shape", "threads", "batched", "token by token", "llama.cpp", "ratio"], prefill.map((r) => [r.shape, r.threads,
    s(r.prefill_tokens_per_second), s(r.token_by_token_tokens_per_second),
    r.llamacpp_prefill_tokens_per_second ? s(r.llamacpp_prefill_tokens_per_second) : "–", r.ratio_vs_llamacpp ? `${r.ratio_vs_llamacpp.toFixed(2)}×` : "–"]));
}
const ppl = load("perplexity.json")?.perplexity;
if (ppl) {
  out.push("**Perplexity throughput** (tokens scored/s, one thread):", "");
  table(["shape", "tokens", "batched", "token by token"], ppl.map((r) => [r.shape, r.tokens, s(r.batched_tokens_per_second), s(r.token_by_token_tokens_per_second)]));
}
const ld = load("load.json")?.load;
if (ld) {
  out.push("**Load** (warm page cache, ms):", "");
  table(["shape", "MB", "dynact load", "cat > /dev/null", "ratio"], ld.map((r) => [r.shape, (r.bytes / 1e6).toFixed(0), s(r.load_ms), s(r.cat_ms), `${r.ratio.toFixed(2)}×`]));
}
const ffn = load("ffn.json") ?? load("kernels.json");
if (ffn?.ffn) {
  out.push("**Sparse FFN block** (weights rotated through memory; speed-up of gather over dense, median ms):", "");
  const cases = [...new Map(ffn.ffn.map((r) => [`${r.shape}/${r.dtype ?? "f32"}/${r.path}`, r])).values()];
  const sparsities = [...new Set(ffn.ffn.map((r) => r.sparsity))];
  table(["shape", "dtype", "path", "dense ms", ...sparsities.map((x) => `${100 * x}%`)], cases.map((c) => {
    const rows = ffn.ffn.filter((q) => q.shape === c.shape && (q.dtype ?? "f32") === (c.dtype ?? "f32") && q.path === c.path);
    return [c.shape, c.dtype ?? "f32", c.path, rows[0].dense_ms.toFixed(3),
      ...sparsities.map((x) => { const r = rows.find((q) => q.sparsity === x); return r ? `${(r.dense_ms / r.gather_ms).toFixed(2)}×` : "–"; })];
  }));
}
const train = load("train.json")?.train;
if (train) {
  out.push("**Training throughput** (stories260K shape, batch 4 × 256, one thread; tokens/s):", "");
  table(["backend", "tokens/s"], train.map((r) => [r.backend === "wasm" ? "wasm kernels" : "plain TS ops", s(r.tokens_per_second)]));
}
const att = load("attention.json")?.attention;
if (att) {
  out.push("**Attention block** (dim 768, 12 heads; speed-up over dense):", "");
  table(["context", "head sparsity", "keep", "skip"], [...new Set(att.map((r) => `${r.context}|${r.head_sparsity}`))].map((k) => {
    const [ctx, hsp] = k.split("|").map(Number);
    const f = (p) => att.find((r) => r.context === ctx && r.head_sparsity === hsp && r.policy === p);
    return [ctx, `${100 * hsp}%`, f("keep") ? `${f("keep").ms.toFixed(3)} ms (${f("keep").speedup.toFixed(2)}×)` : "–", f("skip") ? `${f("skip").ms.toFixed(3)} ms (${f("skip").speedup.toFixed(2)}×)` : "–"];
  }));
}
const gated = load("gated.json")?.gated;
if (gated) {
  out.push("**End-to-end decode under neuron gates** (stories110M shape, gather mode, tokens/s):", "");
  table(["gate", "tokens/s", "active neurons", "vs dense"], gated.map((r) => [r.gate, s(r.tokens_per_second), `${(100 * r.active_fraction).toFixed(1)}%`, `${r.speedup.toFixed(2)}×`]));
}
const k = load("kernels.json");
if (k?.kernels) {
  const peak = k.peak_gflops ? `, f32 mul + add peak ${k.peak_gflops.toFixed(1)} GFLOP/s` : "";
  out.push(`**Matvec kernels** (one thread, weights from memory; measured read bandwidth ${k.read_gbps.toFixed(1)} GB/s${peak}; ms per product, GB/s):`, "");
  const cases = [...new Set(k.kernels.map((r) => `${r.model} ${r.shape}`))];
  const dtypes = [...new Set(k.kernels.map((r) => r.dtype))];
  table(["matrix", ...dtypes], cases.map((c) => [c, ...dtypes.map((d) => {
    const r = k.kernels.find((q) => `${q.model} ${q.shape}` === c && q.dtype === d);
    return r ? `${r.ms.toFixed(3)} (${r.gbps.toFixed(1)})` : "–";
  })]));
}
console.log(out.join("\n"));
