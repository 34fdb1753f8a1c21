// The study's report: report.json (everything measured), report.md (tables, and each of the paper's three pitfalls
// stated with the numbers measured here), and SVG plots drawn by the project.
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { Family } from "./matrix";
import type { CellResult, StudyResult } from "./study";
import { lineChart, type Series } from "./svg";

export const PLOTS = {
  pplVsSparsity: "ppl_vs_sparsity.svg",
  layerSparsity: "layer_sparsity_cett0.2.svg",
  predictorRecall: "predictor_recall.svg",
  heads: "heads_keep_vs_skip.svg",
  models: "models_side_by_side.svg",
};

const FFN_FAMILIES: Family[] = ["cett", "cett-global", "cats", "topk", "griffin", "tda", "teal", "predictor"];

export function writeReport(r: StudyResult, dir: string): void {
  writeFileSync(path.join(dir, "report.json"), `${JSON.stringify(r, null, 1)}\n`);
  const plots = drawPlots(r);
  for (const [file, svg] of Object.entries(plots)) writeFileSync(path.join(dir, file), `${svg}\n`);
  writeFileSync(path.join(dir, "report.md"), markdown(r));
}

// Prompt-based gates run dense over the prompt half of each window: their sparsity is that of the generated half.
// TEAL gates no neuron: its sparsity is that of the linears' inputs, its target.
// TDA keeps a data-dependent set chosen from the prompt: the measured active fraction averages the dense prompt half
// and the generated half, so the generated half's sparsity is about 2·(1 − active).
const sparsity = (c: CellResult) =>
  c.family === "griffin" || c.family === "teal" ? c.target : c.family === "tda" ? 2 * (1 - c.active_mean) : 1 - c.active_mean;
/** A gate spec as the report shows it: files by their base name. */
const short = (spec: string) => spec.replace(/[^:]*\/([^/:]+)/g, "$1");
const label = (r: StudyResult, model: string) => r.models.find((m) => m.path === model)?.label ?? model;

function drawPlots(r: StudyResult): Record<string, string> {
  const name = (model: string, rest: string) => (r.models.length > 1 ? `${label(r, model)}: ${rest}` : rest);
  const ffnSeries: Series[] = [];
  for (const m of r.models) {
    const dense = r.cells.find((c) => c.model === m.path && c.family === "dense");
    for (const f of FFN_FAMILIES) {
      const cells = r.cells.filter((c) => c.model === m.path && c.family === f && c.headGate === "dense");
      if (!cells.length) continue;
      const points = cells.map((c) => ({ x: sparsity(c), y: c.perplexity }));
      if (dense) points.push({ x: 0, y: dense.perplexity });
      ffnSeries.push({ name: name(m.path, f), points });
    }
  }
  const layerSeries: Series[] = r.models.map((m) => {
    const cell = r.cells.find((c) => c.model === m.path && c.ffnGate === "cett:0.2");
    return { name: m.label, points: (cell?.ffn.active_fraction ?? []).map((a, l) => ({ x: l, y: 1 - a })) };
  });
  const recallSeries: Series[] = r.cells.filter((c) => c.family === "predictor" && c.ffn.oracle).map((c) => ({
    name: label(r, c.model), points: c.ffn.oracle!.recall.map((y, l) => ({ x: l, y })),
  }));
  const headSeries: Series[] = [];
  for (const m of r.models) {
    const dense = r.cells.find((c) => c.model === m.path && c.family === "dense");
    for (const f of ["heads-norm", "heads-topk", "heads-predictor"] as const) {
      for (const policy of ["keep", "skip"] as const) {
        const cells = r.cells.filter((c) => c.model === m.path && c.family === f && c.kvPolicy === policy);
        if (!cells.length) continue;
        const points = cells.map((c) => ({ x: c.target, y: c.perplexity }));
        if (dense) points.push({ x: 0, y: dense.perplexity });
        headSeries.push({ name: name(m.path, `${f.slice(6)} ${policy}`), points });
      }
    }
  }
  const sideBySide: Series[] = r.models.flatMap((m) => ["cats", "topk"].map((f) => ({
    name: `${m.label} (${m.activation}): ${f}`,
    points: r.cells.filter((c) => c.model === m.path && c.family === f).map((c) => ({ x: sparsity(c), y: c.perplexity })),
  })));
  return {
    [PLOTS.pplVsSparsity]: lineChart(ffnSeries, { title: "Perplexity vs MLP sparsity", xLabel: "measured MLP sparsity", yLabel: "perplexity", logY: true }),
    [PLOTS.layerSparsity]: lineChart(layerSeries, { title: "Per-layer MLP sparsity at CETT 0.2", xLabel: "layer", yLabel: "sparsity" }),
    [PLOTS.predictorRecall]: lineChart(recallSeries, {
      title: recallSeries.length ? "Predictor recall per layer" : "Predictor recall per layer (no predictor cells)", xLabel: "layer", yLabel: "recall",
    }),
    [PLOTS.heads]: lineChart(headSeries, { title: "Perplexity vs head sparsity: keep vs skip KV", xLabel: "head sparsity", yLabel: "perplexity", logY: true }),
    [PLOTS.models]: lineChart(sideBySide, { title: r.models.length > 1 ? "Models side by side" : "Model (one given)", xLabel: "measured MLP sparsity", yLabel: "perplexity", logY: true }),
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "–");

function markdown(r: StudyResult): string {
  const o = r.options;
  const out: string[] = [];
  out.push("# dynact study: dynamic activation in LLaMA models", "");
  out.push(`Created ${r.created}${o.quick ? " (quick matrix)" : ""}. Perplexity on the first ${o.eval_tokens} tokens of \`${path.basename(o.text)}\` ` +
    `(windows of ${o.ctx - 1} tokens from BOS); thresholds calibrated on the next ${o.calibration_tokens} tokens; ` +
    `${o.tasks.length ? taskItems(r) : "no tasks"}; ` +
    `decode speed over ${o.speed_steps} positions, one thread. Accuracy runs in mask mode (dense compute, zeros outside the ` +
    "active set); speed runs the sparse kernels (gather; keep/skip).", "");
  out.push("## Models", "", "| model | activation | dim | hidden | layers | heads / KV | exact zeros of act(W_gate x), per layer |", "|---|---|---|---|---|---|---|");
  for (const m of r.models) {
    out.push(`| ${m.label} | ${m.activation} | ${m.dim} | ${m.hidden} | ${m.layers} | ${m.heads} / ${m.kv_heads} | ${m.zero_fraction.map(pct).join(" ")} |`);
  }
  out.push("", "## MLP strategies", "", "Sparsity is measured over all scored tokens, except for griffin, whose neurons are chosen from the " +
    "prompt half of each window (run dense): its sparsity is that of the generated half; and teal, whose sparsity is " +
    "that of the inputs of every linear (mask mode: its products are not skipped, so its speed is dense speed).", "",
  "| model | gate | sparsity (measured) | perplexity | Δ vs dense | CETT (mean) | MACs done (sparse run) | decode tok/s | tasks (acc) |", "|---|---|---|---|---|---|---|---|---|");
  for (const c of r.cells.filter((x) => x.headGate === "dense")) {
    const dense = denseOf(r, c.model);
    const cett = c.ffn.cett.filter((x): x is number => x !== null);
    out.push(`| ${label(r, c.model)} | ${short(c.ffnGate)} | ${pct(sparsity(c))} | ${num(c.perplexity)} | ${delta(c, dense)} | ` +
      `${cett.length ? num(mean(cett)) : "–"} | ${pct(c.mac_fraction)} | ${num(c.decode_tokens_per_second, 1)} | ${taskText(c)} |`);
  }
  out.push("", "## Attention heads and KV policies", "", "| model | head gate | KV policy | heads active | KV holes (mean) | perplexity | Δ vs dense | decode tok/s |", "|---|---|---|---|---|---|---|---|");
  for (const c of r.cells.filter((x) => x.headGate !== "dense")) {
    out.push(`| ${label(r, c.model)} | ${short(c.headGate)} | ${c.kvPolicy} | ${pct(c.head_active_mean)} | ${pct(mean(c.attention.kv_hole_fraction))} | ` +
      `${num(c.perplexity)} | ${delta(c, denseOf(r, c.model))} | ${num(c.decode_tokens_per_second, 1)} |`);
  }
  out.push("", "## The paper's three pitfalls, measured here", "");
  out.push(...pitfalls(r));
  out.push("", "## Plots", "", ...Object.values(PLOTS).map((f) => `- [${f}](${f})`), "");
  return out.join("\n");
}

function pitfalls(r: StudyResult): string[] {
  const out: string[] = [];
  for (const m of r.models) {
    const cells = r.cells.filter((c) => c.model === m.path);
    const dense = denseOf(r, m.path);
    const at = (family: Family, target: number, policy?: string) =>
      cells.find((c) => c.family === family && Math.abs(c.target - target) < 1e-9 && (!policy || c.kvPolicy === policy));
    out.push(`### ${m.label} (${m.activation})`, "");
    // 1. prediction
    const topk = at("topk", 0.5);
    const griffin = at("griffin", 0.5);
    const norm = at("heads-norm", 0.5, "keep");
    const qnorm = at("heads-topk", 0.5, "keep");
    const lines1: string[] = [];
    if (topk && griffin) {
      const worse = griffin.perplexity > topk.perplexity;
      lines1.push(`at 50% MLP sparsity, neurons chosen per token from the actual activations (topk) give perplexity ${num(topk.perplexity)}; ` +
        `neurons predicted once from the prompt (griffin) give ${num(griffin.perplexity)} — ${worse ? "prediction costs accuracy: **agrees**" : "prediction costs nothing here: **disagrees**"}.`);
    }
    const pred = cells.find((c) => c.family === "predictor");
    if (pred?.ffn.oracle) {
      lines1.push(`a trained predictor reaches recall ${num(mean(pred.ffn.oracle.recall))} and precision ${num(mean(pred.ffn.oracle.precision))} ` +
        `(mean over layers) at ${pct(sparsity(pred))} sparsity, perplexity ${num(pred.perplexity)}.`);
    }
    if (norm && qnorm) {
      lines1.push(`for heads at 50%, the oracle (output norm) gives ${num(norm.perplexity)} and the query-norm score ${num(qnorm.perplexity)} ` +
        `— ${qnorm.perplexity > norm.perplexity ? "a cheap score misses the important heads: **agrees**" : "the cheap score does as well: **disagrees**"}.`);
    }
    const hpred = at("heads-predictor", 0.5, "keep");
    if (norm && hpred) {
      lines1.push(`a trained head predictor (from the block input, before any attention product) gives ${num(hpred.perplexity)} ` +
        `at 50% heads vs the oracle's ${num(norm.perplexity)}.`);
    }
    out.push(`1. *Predicting active heads and neurons is hard.* ${lines1.join(" ") || "not measured in this matrix."}`);
    // 2. sparsity of SiLU
    const zeros = mean(m.zero_fraction);
    const cats90 = at("cats", 0.9);
    const cats50 = at("cats", 0.5);
    const relu = r.models.find((x) => x.activation === "relu" && x.path !== m.path);
    let line2 = `exact zeros in act(W_gate x): ${pct(zeros)} on average (per layer ${m.zero_fraction.map(pct).join(", ")}).`;
    if (cats50 && dense) line2 += ` CATS at 50% target sparsity: perplexity ${delta(cats50, dense)} vs dense;`;
    if (cats90 && dense) line2 += ` at 90%: ${delta(cats90, dense)}.`;
    if (m.activation !== "relu") {
      line2 += zeros < 0.05
        ? " SiLU leaves essentially no exact zeros, so every skipped neuron is an approximation: **agrees**."
        : " this SiLU model has real zeros after all: **disagrees**.";
    } else {
      line2 += zeros >= 0.5 ? " ReLU makes most activations exact zeros, so skipping them is free." : " this ReLU model is less sparse than expected.";
    }
    if (relu && m.activation !== "relu") line2 += ` Compare ${relu.label} (relu): ${pct(mean(relu.zero_fraction))} exact zeros.`;
    out.push(`2. *SiLU gives too little real sparsity.* ${line2}`);
    // 3. KV
    const keep = at("heads-topk", 0.5, "keep") ?? at("heads-norm", 0.5, "keep");
    const skip = keep ? at(keep.family, 0.5, "skip") : undefined;
    out.push(`3. *Skipping KV-cache writes throws information away.* ${keep && skip
      ? `at 50% head sparsity (${short(keep.headGate)}), keep gives perplexity ${num(keep.perplexity)} and skip ${num(skip.perplexity)} ` +
        `(${pct(mean(skip.attention.kv_hole_fraction))} of KV entries left as holes) — ${skip.perplexity > keep.perplexity ? "**agrees**" : "**disagrees**"}.`
      : "not measured in this matrix."}`, "");
  }
  return out;
}

function denseOf(r: StudyResult, model: string): CellResult | undefined {
  return r.cells.find((c) => c.model === model && c.family === "dense");
}

function delta(c: CellResult, dense: CellResult | undefined): string {
  if (!dense || c === dense) return "–";
  const d = c.perplexity / dense.perplexity - 1;
  return `${d >= 0 ? "+" : ""}${(100 * d).toFixed(1)}%`;
}

/**
 * The items scored per task: --limit, or fewer when a task has fewer (the report said "--limit items" of a task
 * that had fewer, e.g. 1000 items of a 500-item OpenBookQA).
 */
function taskItems(r: StudyResult): string {
  const files = r.options.tasks.map((t) => `\`${path.basename(t)}\``);
  const n = r.options.tasks.map((_, i) => r.cells[0]?.tasks[i]?.n ?? r.options.limit);
  if (n.every((x) => x === r.options.limit)) return `${r.options.limit} items of ${files.join(", ")}`;
  return files.map((f, i) => `${n[i]} items of ${f}`).join(", ");
}

function taskText(c: CellResult): string {
  return c.tasks.map((t) => `${path.basename(t.task)} ${num(t.acc)}`).join(", ") || "–";
}

function mean(a: number[]): number {
  return a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN;
}
