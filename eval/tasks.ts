// Multiple-choice task files (JSON Lines), read into items the way lm-evaluation-harness builds its documents:
//   hellaswag    {"ctx","endings","label"}: context = preprocess(ctx), choices = preprocess(ending). The derived file
//                in ../shared has ctx = "activity_label: ctx" already joined, so lm-eval's capitalization of ctx_b
//                cannot be redone ("… a roof. he" where lm-eval has "… a roof. He"); original HellaSwag rows
//                ({"activity_label","ctx_a","ctx_b",…}) are joined exactly as lm-eval joins them.
//   openbookqa   {"question","choices"[],"label"} (or Hugging Face's {"question_stem","choices":
//                {"text","label"},"answerKey"}): context = the question stem, choices = the choice texts.
//   generic      {"context","choices"[],"label"}.
// The format is recognised per line by its fields.
import { readFileSync } from "node:fs";
import path from "node:path";
import { DynactError } from "../engine/errors";

export interface McItem {
  context: string;
  /** Answer texts without the delimiter (lm-eval's doc_to_choice); acc_norm divides by their length. */
  choices: string[];
  /** Index of the right answer in choices. */
  label: number;
}

export interface McTask {
  /** The file name without .jsonl. */
  name: string;
  file: string;
  items: McItem[];
}

type Row = Record<string, unknown>;

export function readTask(file: string): McTask {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new DynactError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const items: McItem[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new DynactError(`${where}: not valid JSON (${(e as Error).message})`);
    }
    items.push(checkItem(toItem(row, where), where));
  });
  if (items.length === 0) throw new DynactError(`${file}: no items`);
  return { name: path.basename(file).replace(/\.jsonl$/, ""), file, items };
}

function toItem(row: unknown, where: string): McItem {
  if (typeof row !== "object" || row === null || Array.isArray(row)) throw new DynactError(`${where}: expected a JSON object`);
  const r = row as Row;
  if ("endings" in r) return hellaswagItem(r, where);
  if ("question" in r || "question_stem" in r) return openbookqaItem(r, where);
  if ("context" in r) return { context: str(r, "context", where), choices: strings(r.choices, "choices", where), label: int(r.label, where) };
  throw new DynactError(
    `${where}: not a task item: expected hellaswag {"ctx","endings","label"}, openbookqa {"question","choices","label"} ` +
    `or generic {"context","choices","label"} fields, got {${Object.keys(r).map((k) => JSON.stringify(k)).join(",")}}`,
  );
}

function hellaswagItem(r: Row, where: string): McItem {
  // Python's str.capitalize: first character upper case, the rest lower case.
  const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
  const query = "ctx_a" in r
    ? `${str(r, "activity_label", where)}: ${str(r, "ctx_a", where)} ${capitalize(str(r, "ctx_b", where))}`
    : str(r, "ctx", where);
  return {
    context: hellaswagPreprocess(query),
    choices: strings(r.endings, "endings", where).map(hellaswagPreprocess),
    label: int(r.label, where),
  };
}

/** lm-eval's hellaswag text cleanup: strip, " [title]" → ". ", drop the other WikiHow "[…]" markers, "  " → " ". */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

function openbookqaItem(r: Row, where: string): McItem {
  const context = "question_stem" in r ? str(r, "question_stem", where) : str(r, "question", where);
  const c = r.choices;
  if (typeof c === "object" && c !== null && !Array.isArray(c)) {
    // Hugging Face layout: choices {text: [...], label: ["A", ...]}, answerKey one of the labels.
    const { text, label } = c as Row;
    const labels = strings(label, "choices.label", where);
    const key = str(r, "answerKey", where).trim();
    const index = labels.indexOf(key);
    if (index < 0) throw new DynactError(`${where}: answerKey ${JSON.stringify(key)} is not one of choices.label`);
    return { context, choices: strings(text, "choices.text", where), label: index };
  }
  return { context, choices: strings(c, "choices", where), label: int(r.label, where) };
}

/** What every item must be, from a file or built by a caller: at least 2 non-empty choices and a label among them. */
export function checkItem(item: McItem, where: string): McItem {
  if (typeof item.context !== "string") throw new DynactError(`${where}: the context must be a string`);
  if (!Array.isArray(item.choices) || !item.choices.every((c) => typeof c === "string")) {
    throw new DynactError(`${where}: the choices must be an array of strings`);
  }
  if (!Number.isInteger(item.label)) throw new DynactError(`${where}: the label must be an integer index, got ${item.label}`);
  if (item.choices.length < 2) throw new DynactError(`${where}: needs at least 2 choices, got ${item.choices.length}`);
  const empty = item.choices.findIndex((c) => c === "");
  // acc_norm divides by the choice's length.
  if (empty >= 0) throw new DynactError(`${where}: choice ${empty} is empty`);
  if (item.label < 0 || item.label >= item.choices.length) {
    throw new DynactError(`${where}: label ${item.label} is not the index of one of the ${item.choices.length} choices`);
  }
  return item;
}

function str(r: Row, key: string, where: string): string {
  const v = r[key];
  if (typeof v !== "string") throw new DynactError(`${where}: "${key}" must be a string`);
  return v;
}

function strings(v: unknown, key: string, where: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw new DynactError(`${where}: "${key}" must be an array of strings`);
  return v;
}

/** A label is an integer index; HellaSwag's own files write it as a string ("3"). */
function int(v: unknown, where: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n)) throw new DynactError(`${where}: "label" must be an integer index, got ${JSON.stringify(v)}`);
  return n;
}
