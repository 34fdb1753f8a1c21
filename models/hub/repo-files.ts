// Which files of a repo make a model or a tokenizer: chosen from the Hub's file list before a download, and
// recognised again in a cached snapshot without asking the Hub.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { HubError } from "./hub-error";

export type HubKind = "model" | "tokenizer";

/** A Hugging Face folder (these files, in download order) or one file (a GGUF). */
export type RepoPlan = { folder: string[] } | { file: string };

export const INDEX = "model.safetensors.index.json";
// tokenizer.json after its config: once it is there, the tokenizer is complete.
const TOKENIZER_FILES = ["tokenizer_config.json", "tokenizer.json"];

export function planDownload(kind: HubKind, listed: readonly string[], spec: string): RepoPlan {
  const has = new Set(listed);
  const tokenizer = TOKENIZER_FILES.filter((f) => has.has(f));
  if (kind === "tokenizer") {
    if (has.has("tokenizer.json")) return { folder: tokenizer };
    throw new HubError(`${spec} has no tokenizer.json; name the tokenizer file: ${spec}/FILE`);
  }
  const weights = has.has(INDEX) ? INDEX : has.has("model.safetensors") ? "model.safetensors" : undefined;
  // config.json last: a snapshot with it holds the whole folder (shards are queued before it once the index is in).
  if (has.has("config.json") && weights) return { folder: [...tokenizer, weights, "config.json"] };
  const ggufs = listed.filter((f) => f.endsWith(".gguf"));
  if (ggufs.length === 1) return { file: ggufs[0]! };
  if (ggufs.length > 1) {
    const some = ggufs.slice(0, 4).join(", ") + (ggufs.length > 4 ? ", …" : "");
    throw new HubError(`${spec} has ${ggufs.length} GGUF files (${some}); pick one: ${spec}/FILE`);
  }
  throw new HubError(`${spec} has neither config.json with model.safetensors nor a .gguf file; name a file: ${spec}/FILE`);
}

/** The shard files a model.safetensors.index.json names. */
export function shardsOf(indexFile: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexFile, "utf8")) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new HubError(`${indexFile}: ${(e as Error).message}`);
  }
  if (typeof map !== "object" || map === null) throw new HubError(`${indexFile}: no weight_map`);
  const shards = new Set(Object.values(map));
  // Shards are joined onto the snapshot folder: plain file names only.
  if (![...shards].every((s) => typeof s === "string" && /^[^/\\]+$/.test(s) && s !== "." && s !== "..")) {
    throw new HubError(`${indexFile}: weight_map names a shard that is not a file name`);
  }
  return [...shards] as string[];
}

/** What a cached snapshot already holds for `kind`: the folder, a single GGUF in it, or nothing. */
export function cachedInSnapshot(snapshot: string, kind: HubKind): string | undefined {
  if (!existsSync(snapshot)) return undefined;
  if (kind === "tokenizer") return existsSync(path.join(snapshot, "tokenizer.json")) ? snapshot : undefined;
  if (folderComplete(snapshot)) return snapshot;
  const ggufs = (readdirSync(snapshot, { recursive: true }) as string[]).filter((f) => f.endsWith(".gguf"));
  return ggufs.length === 1 && existsSync(path.join(snapshot, ggufs[0]!)) ? path.join(snapshot, ggufs[0]!) : undefined;
}

function folderComplete(dir: string): boolean {
  if (!existsSync(path.join(dir, "config.json"))) return false;
  if (existsSync(path.join(dir, "model.safetensors"))) return true;
  const index = path.join(dir, INDEX);
  if (!existsSync(index)) return false;
  try {
    return shardsOf(index).every((s) => existsSync(path.join(dir, s)));
  } catch {
    return false; // an unreadable index: download again rather than load a broken folder
  }
}
