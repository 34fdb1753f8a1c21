// `hf:OWNER/REPO[/FILE]` to a local path: the cache's copy when it has one (no request at all), else downloaded
// once into the cache. A repo without FILE becomes a Hugging Face folder (config.json, safetensors, tokenizer) or
// its single GGUF, chosen from the Hub's file list.
import { existsSync } from "node:fs";
import path from "node:path";
import { fetchBlob, type HubProgress, type TransferOptions } from "./blob";
import { hubCacheDir, RepoCache } from "./cache";
import { fileInfo, isSafeName } from "./file-info";
import { HubError } from "./hub-error";
import { hubFetch, statusError, type HttpOptions } from "./http";
import { cachedInSnapshot, INDEX, planDownload, shardsOf, type HubKind } from "./repo-files";
import { isRepoPath, parseHubSpec, type HubSpec } from "./spec";

export interface HubOptions {
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default: hubCacheDir() (DYNACT_CACHE, else huggingface_hub's cache). */
  cacheDir?: string;
  /** Default: HF_TOKEN. */
  token?: string;
  /** Fail when the server sends nothing for this long (default 30 s). */
  timeoutMs?: number;
  /** Resume attempts per file after a dropped connection, and per request after a busy answer (default 3). */
  retries?: number;
  onProgress?: HubProgress;
}

const LOCAL_HINT = "to use a local copy instead, pass its path (-m FILE, -t FILE)";

/** The local path of `spec`, downloading whatever the cache lacks. */
export async function downloadFromHub(spec: string, kind: HubKind = "model", opts: HubOptions = {}): Promise<string> {
  const s = parseHubSpec(spec);
  const root = opts.cacheDir ?? hubCacheDir();
  const cache = new RepoCache(root, s.repo);
  const cached = cachedPath(s, cache, kind);
  if (cached) return cached;
  if (process.env.HF_HUB_OFFLINE === "1") throw new HubError(`${spec}: not in the cache ${cache.dir} and HF_HUB_OFFLINE=1; ${LOCAL_HINT}`);
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
  const http = { timeoutMs: opts.timeoutMs ?? 30_000, token: opts.token ?? process.env.HF_TOKEN, retries: opts.retries ?? 3, onProgress: opts.onProgress };
  try {
    if (s.file) return await fetchFile(s.repo, "main", s.file, endpoint, cache, http, true);
    const { commit, files } = await listRepo(endpoint, s.repo, http);
    const plan = planDownload(kind, files, spec);
    if ("file" in plan) return await fetchFile(s.repo, commit, plan.file, endpoint, cache, http, true);
    const queue = [...plan.folder];
    for (let i = 0; i < queue.length; i++) {
      const local = await fetchFile(s.repo, commit, queue[i]!, endpoint, cache, http, false);
      if (queue[i] === INDEX) queue.splice(i + 1, 0, ...shardsOf(local));
    }
    cache.setCommit(commit);
    return cache.snapshot(commit);
  } catch (e) {
    if (e instanceof HubError) throw new HubError(`${spec}: ${e.message}; ${LOCAL_HINT}`);
    // A cache folder that cannot be written (permissions, a file in the way, a full or read-only disk): say it is
    // the cache, and where to put it instead, rather than only the failing path.
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === "string" && typeof err.path === "string" && !path.relative(root, err.path).startsWith("..")) {
      throw new HubError(`${spec}: cannot write the download cache (${err.message}); set DYNACT_CACHE to another folder, or ${LOCAL_HINT}`);
    }
    throw e;
  }
}

/**
 * The local path of `spec` if the cache holds it, without any request: how loadModel takes `hf:` names. Not
 * there yet: a HubError saying how to download it.
 */
export function cachedHubPath(spec: string, kind: HubKind = "model", cacheDir = hubCacheDir()): string {
  const s = parseHubSpec(spec);
  const cache = new RepoCache(cacheDir, s.repo);
  const cached = cachedPath(s, cache, kind);
  if (!cached) {
    throw new HubError(`${spec} is not downloaded yet (cache: ${cache.dir}): run a dynact command with ` +
      `${kind === "model" ? "-m" : "-t"} ${spec}, or await downloadFromHub("${spec}") first`);
  }
  return cached;
}

function cachedPath(s: HubSpec, cache: RepoCache, kind: HubKind): string | undefined {
  const commit = cache.commit();
  if (!commit) return undefined;
  if (!s.file) return cachedInSnapshot(cache.snapshot(commit), kind);
  const file = path.join(cache.snapshot(commit), s.file);
  return existsSync(file) ? file : undefined; // follows the link: true only once the blob is complete
}

/** Download one file at `revision` and link it into its commit's snapshot; `setRef`: record that commit as main. */
async function fetchFile(
  repo: string, revision: string, file: string, endpoint: string, cache: RepoCache,
  opts: TransferOptions, setRef: boolean,
): Promise<string> {
  const remote = await fileInfo(endpoint, repo, revision, file, opts);
  await fetchBlob(remote, cache, file, opts);
  const local = cache.link(remote.commit, file, remote.etag);
  if (setRef) cache.setCommit(remote.commit);
  return local;
}

/** The Hub's file list of a repo's main branch, and the commit it describes. */
async function listRepo(endpoint: string, repo: string, opts: HttpOptions): Promise<{ commit: string; files: string[] }> {
  const res = await hubFetch(`${endpoint}/api/models/${repo}`, {}, opts);
  if (res.status !== 200) {
    res.close();
    throw statusError(res);
  }
  let info: { sha?: unknown; siblings?: unknown };
  try {
    info = JSON.parse(await res.text()) as typeof info;
  } catch {
    throw new HubError(`${endpoint}/api/models/${repo} did not answer with JSON`);
  }
  const files = Array.isArray(info.siblings) ? info.siblings.map((f) => (f as { rfilename?: unknown }).rfilename) : [];
  if (typeof info.sha !== "string" || !isSafeName(info.sha) || !files.every((f): f is string => typeof f === "string")) {
    throw new HubError(`${endpoint}/api/models/${repo} did not list the repo's commit and files`);
  }
  // A listed name becomes a path in the cache (snapshots/COMMIT/NAME): from a hostile or broken server, "../../x"
  // would put a link outside it, over whatever file is there.
  const bad = files.find((f) => !isRepoPath(f));
  if (bad !== undefined) throw new HubError(`${endpoint}/api/models/${repo} listed a file name that is not a path inside the repo: ${JSON.stringify(bad)}`);
  return { commit: info.sha, files };
}
