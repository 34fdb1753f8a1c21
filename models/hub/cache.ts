// The download cache, in the layout of Python's huggingface_hub so that a model downloaded by either is found by
// the other: ROOT/models--OWNER--REPO/{blobs/ETAG, snapshots/COMMIT/FILE -> ../../blobs/ETAG, refs/main}.
// A blob exists only once complete and verified; until then its bytes live in blobs/ETAG.incomplete, which both
// resume with an HTTP Range request.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { HubError } from "./hub-error";

/**
 * The cache root: DYNACT_CACHE, else huggingface_hub's (HF_HUB_CACHE, else HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub).
 */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DYNACT_CACHE) return env.DYNACT_CACHE;
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const home = env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "huggingface");
  return path.join(home, "hub");
}

export class RepoCache {
  readonly dir: string;

  constructor(root: string, repo: string) {
    this.dir = path.join(root, `models--${repo.replace("/", "--")}`);
  }

  blob(etag: string): string {
    return path.join(this.dir, "blobs", etag);
  }

  incomplete(etag: string): string {
    return `${this.blob(etag)}.incomplete`;
  }

  snapshot(commit: string): string {
    return path.join(this.dir, "snapshots", commit);
  }

  /** The commit a branch pointed to when last downloaded. */
  commit(ref = "main"): string | undefined {
    const file = path.join(this.dir, "refs", ref);
    return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
  }

  setCommit(commit: string, ref = "main"): void {
    atomicWrite(path.join(this.dir, "refs", ref), (tmp) => writeFileSync(tmp, commit));
  }

  /** Make snapshots/COMMIT/FILE point at the blob (a relative symlink, as huggingface_hub makes it). */
  link(commit: string, file: string, etag: string): string {
    const pointer = path.join(this.snapshot(commit), file);
    // Callers check names; this is the one place a name becomes a file we write, so check once more here.
    const inside = path.relative(this.snapshot(commit), pointer);
    if (inside === "" || inside.startsWith("..") || path.isAbsolute(inside)) throw new HubError(`${file}: not a path inside the repo`);
    atomicWrite(pointer, (tmp) => symlinkSync(path.relative(path.dirname(pointer), this.blob(etag)), tmp));
    return pointer;
  }
}

/** Create `file` whole or not at all: make it under a temporary name beside it, then rename over. */
function atomicWrite(file: string, make: (tmp: string) => void): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  make(tmp);
  renameSync(tmp, file);
}
