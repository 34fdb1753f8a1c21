import { loadModel } from "../../models/load";
import { isPosInt, MODEL_OPTIONS, number, parse, requireString, threadsOption, THREADS_HELP } from "../args";
import { UsageError } from "../usage-error";
import { DynactError } from "../../engine/errors";

export const help = `dynact logits -m MODEL [-t TOKENIZER] -p PROMPT [--top K] [--json]

Run BOS + the encoded prompt and print the logits at the last position: one "id<TAB>logit" line per token
(--top K: only the K largest, with their pieces). --json: {"ids":[…], "logits":[…]}, with --top K also
"top":[{"id","logit","piece"}…], the K largest.

${THREADS_HELP}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...MODEL_OPTIONS,
    prompt: { type: "string", short: "p" },
    top: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  if (v.prompt === undefined) throw new UsageError("-p/--prompt is required (it may be empty: -p '')");
  const top = v.top === undefined ? undefined : number(v.top, "--top", 0, isPosInt, "a positive integer");
  const { model, tokenizer } = loadModel(file, { tokenizer: v.tokenizer, threads: threadsOption(v.threads) });
  const ids = tokenizer.encode(v.prompt, { bos: true });
  if (ids.length > model.config.seqLen) {
    throw new DynactError(`the prompt is ${ids.length} tokens, longer than the context of ${model.config.seqLen}`);
  }
  const logits = model.prefill(ids, 0).read();
  const order = Array.from(logits.keys());
  if (top !== undefined) order.sort((a, b) => logits[b] - logits[a] || a - b);
  const prev = ids[ids.length - 1];
  const best = order.slice(0, top);
  if (v.json) {
    // --top is not dropped: the K largest come as "top" beside the full row.
    const topRows = top === undefined ? {} : { top: best.map((id) => ({ id, logit: logits[id], piece: tokenizer.decode([id], prev) })) };
    console.log(JSON.stringify({ ids, logits: Array.from(logits), ...topRows }));
    return;
  }
  const rows = best.map((i) =>
    top === undefined ? `${i}\t${logits[i]}` : `${i}\t${logits[i]}\t${JSON.stringify(tokenizer.decode([i], prev))}`);
  console.log(rows.join("\n"));
}
