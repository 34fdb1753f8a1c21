import { evaluate } from "../../eval/multiple-choice";
import { readTask } from "../../eval/tasks";
import { loadModel } from "../../models/load";
import { isPosInt, MODEL_OPTIONS, number, parse, requireString, threadsOption, THREADS_HELP } from "../args";
import { applyGate, ffnStatLines, GATE_HELP, GATE_OPTIONS, layoutFor, parseGateOptions, progressLine } from "../gate-options";
import { logLine } from "../log";
import { UsageError } from "../usage-error";

export const help = `dynact eval -m MODEL [-t TOKENIZER] --task FILE.jsonl [--task FILE2.jsonl …] [--limit N] [gate options] [--json]

Zero-shot multiple-choice accuracy with lm-evaluation-harness semantics: each choice is scored by the
log-likelihood of " " + choice after [BOS, context]; acc picks the largest sum, acc_norm the largest sum per
character of the choice; ± is the standard error of the mean. Contexts too long for the model are cut from the
left. Task files are JSON Lines: HellaSwag {"ctx","endings","label"}, OpenBookQA {"question","choices","label"}
or generic {"context","choices","label"}. Prompt-based gates (griffin, tda) take the context as the prompt.

      --task FILE         task file (repeatable)
      --limit N           score only the first N items of each task
${GATE_HELP}
      --json              {"tasks":[{"task","n","acc","acc_stderr","acc_norm","acc_norm_stderr","truncated"}],"ffn":{…}}
${THREADS_HELP}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...MODEL_OPTIONS,
    task: { type: "string", multiple: true },
    limit: { type: "string" },
    ...GATE_OPTIONS,
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  if (!v.task?.length) throw new UsageError("--task is required");
  const limit = number(v.limit, "--limit", Infinity, isPosInt, "a positive integer");
  const gates = parseGateOptions(v);
  const threads = threadsOption(v.threads);
  const log = (line: string) => logLine(line);
  // Read every task first: a bad file fails before the model loads.
  const tasks = v.task.map(readTask);
  const loaded = loadModel(file, { tokenizer: v.tokenizer, activation: gates.activation, ...layoutFor(gates), threads });
  applyGate(loaded, gates, log);
  const progress = progressLine(log);
  const results = tasks.map((task) => {
    const t0 = performance.now();
    const r = evaluate(loaded, task, { limit, onProgress: (d, t) => progress(task.name, d, t) });
    log(`${task.name}: ${(r.n / ((performance.now() - t0) / 1000)).toFixed(1)} items/s`);
    return r;
  });
  const ffn = loaded.model.ffnStats.summary();
  if (v.json) {
    const tasksOut = results.map(({ items: _, ...summary }) => summary);
    console.log(JSON.stringify({ tasks: tasksOut, ffn_gate: v["ffn-gate"] ?? "dense", ffn_mode: gates.mode, ffn,
      head_gate: gates.headGate, kv_policy: gates.kvPolicy, attention: loaded.model.attentionStats }));
    return;
  }
  const pm = (x: number, se: number | null) => `${x.toFixed(4)} ± ${se === null ? "-" : se.toFixed(4)}`;
  for (const r of results) {
    const cut = r.truncated ? `  (${r.truncated} contexts truncated)` : "";
    console.log(`${r.task}  acc ${pm(r.acc, r.acc_stderr)}  acc_norm ${pm(r.acc_norm, r.acc_norm_stderr)}  n ${r.n}${cut}`);
  }
  for (const line of ffnStatLines(ffn)) console.log(line);
}
