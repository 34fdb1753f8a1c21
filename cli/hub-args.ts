// -m/-t hf:OWNER/REPO[/FILE]: downloaded (once, into the cache) before the command runs, so every command takes
// a local path. A progress bar on a terminal; nothing otherwise.
import { formatBytes } from "../engine/engine";
import type { HubProgress } from "../models/hub/blob";
import { downloadFromHub } from "../models/hub/download";
import type { HubKind } from "../models/hub/repo-files";
import { isHubSpec, parseHubSpec } from "../models/hub/spec";
import { UsageError } from "./usage-error";

const FLAGS: Readonly<Record<string, HubKind>> = { "-m": "model", "--model": "model", "-t": "tokenizer", "--tokenizer": "tokenizer" };

/** `argv` with each hf: value of -m/--model/-t/--tokenizer (also as -mVALUE, --model=VALUE) replaced by its local path. */
export async function resolveHubArgs(argv: readonly string[]): Promise<string[]> {
  const out = [...argv];
  if (out.includes("--help") || out.includes("-h")) return out;
  for (let i = 0; i < out.length; i++) {
    const arg = out[i]!;
    const next = out[i + 1];
    if (Object.hasOwn(FLAGS, arg) && next !== undefined && isHubSpec(next)) {
      out[++i] = await download(next, FLAGS[arg]!);
      continue;
    }
    const joined = /^(--model=|--tokenizer=|-m|-t)(hf:.*)$/s.exec(arg);
    if (joined) out[i] = joined[1]! + (await download(joined[2]!, FLAGS[joined[1]!.replace("=", "")]!));
  }
  return out;
}

async function download(spec: string, kind: HubKind): Promise<string> {
  // A malformed name is a bad value, as any other option's: a usage error, before the cache or the network.
  try {
    parseHubSpec(spec);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const bar = process.stderr.isTTY ? progressBar() : undefined;
  try {
    return await downloadFromHub(spec, kind, { onProgress: bar?.update });
  } finally {
    bar?.end();
  }
}

/** One line per file, rewritten in place at most 10 times a second. */
function progressBar(): { update: HubProgress; end(): void } {
  let last = 0;
  let open = false; // a line without its newline yet
  return {
    update(file, done, total) {
      const now = performance.now();
      const finished = done === total;
      if (!finished && now - last < 100) return;
      last = now;
      const size = total ? ` [${"#".repeat(Math.round((20 * done) / total)).padEnd(20)}] ${formatBytes(done)} / ${formatBytes(total)}` : ` ${formatBytes(done)}`;
      process.stderr.write(`\rdownloading ${file}${size}\x1b[K${finished ? "\n" : ""}`);
      open = !finished;
    },
    // An error message after a broken download starts on a line of its own.
    end() {
      if (open) process.stderr.write("\n");
    },
  };
}
