// One file from the Hub into the cache's blobs/ETAG: the bytes go to a partial file (resumed with an HTTP Range
// request after a drop, here or in a later run), are checked against the announced size and, for LFS files, the
// sha256 that is their ETag, and only then renamed into place. A broken download is never used.
//
// Each download writes a partial file of its own, ETAG.incomplete.HOST-PID-N, never one another process may be
// writing: two processes appending to one shared ETAG.incomplete interleave their bytes, and the one that finishes
// second keeps appending through its open descriptor to the blob the first renamed into place, a corrupt blob that
// every later run would use. A partial nobody writes any more is ETAG.incomplete (left by a failed run, or by
// huggingface_hub) or the partial of a process that died (killed mid-transfer); a download takes one over with an
// atomic rename, so only one process can. HOST names the machine and PID namespace the PID means something in: a
// cache shared between containers (or hosts) sees the other side's PIDs as dead, so their partials are taken over
// only once nothing has written them for an hour (a live download writes far more often: it times out first).
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import type { RepoCache } from "./cache";
import type { RemoteFile } from "./file-info";
import { HubError, InterruptedError } from "./hub-error";
import { hubFetch, statusError, type HttpOptions } from "./http";

/** Bytes of `file` downloaded so far, out of `total` when known. */
export type HubProgress = (file: string, done: number, total: number | undefined) => void;

export interface TransferOptions extends HttpOptions {
  /** Resume attempts after a drop, as long as each attempt brought new bytes. */
  retries: number;
  onProgress?: HubProgress;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Make sure the cache holds the complete, verified blob, downloading it unless it is there already. */
export async function fetchBlob(remote: RemoteFile, cache: RepoCache, label: string, opts: TransferOptions): Promise<void> {
  const blob = cache.blob(remote.etag);
  if (existsSync(blob)) return;
  const shared = cache.incomplete(remote.etag);
  mkdirSync(path.dirname(shared), { recursive: true });
  const part = `${shared}.${PARTIAL_OWNER}-${process.pid}-${++downloads}`; // -N: two downloads of one file in this process too
  const orphans = claimPartial(shared, part);
  try {
    for (let attempt = 0; ; attempt++) {
      const before = bytesOnDisk(part);
      try {
        await transfer(remote, part, label, opts);
        break;
      } catch (e) {
        if (!(e instanceof InterruptedError) || attempt >= opts.retries || bytesOnDisk(part) === before) throw e;
      }
    }
    await verify(remote, part);
    renameSync(part, blob); // another process may have put the same verified bytes there meanwhile: replaced alike
  } catch (e) {
    // What did arrive is kept for the next run to resume (a part that cannot be right was already deleted).
    try {
      if (existsSync(part)) renameSync(part, shared);
    } catch {
      // keeping it is only a saving; the error that stopped the download is the one to report
    }
    throw e;
  }
  for (const orphan of orphans) rmSync(orphan, { force: true }); // more partials of dead processes: not needed now
}

let downloads = 0;

/** This process's machine and PID namespace, as 8 hex digits (the namespace from /proc where there is one). */
export const PARTIAL_OWNER = (() => {
  let pidNamespace = "";
  try {
    pidNamespace = readlinkSync("/proc/self/ns/pid");
  } catch {
    // no /proc (macOS, Windows): the host name alone
  }
  return createHash("sha256").update(`${hostname()}\0${pidNamespace}`).digest("hex").slice(0, 8);
})();

// How long another machine's or container's partial must have lain unwritten before it counts as abandoned.
const FOREIGN_STALE_MS = 60 * 60 * 1000;

/**
 * Move a partial download nobody is writing to `part` (when there is one) and return the other abandoned partials
 * of the same file. A rename that fails with ENOENT lost the race to another process: try the next.
 */
function claimPartial(shared: string, part: string): string[] {
  const dir = path.dirname(shared);
  const prefix = `${path.basename(shared)}.`;
  const orphans = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && abandoned(path.join(dir, f), f.slice(prefix.length)))
    .map((f) => path.join(dir, f));
  for (const [i, candidate] of [shared, ...orphans].entries()) {
    try {
      renameSync(candidate, part);
      return orphans.filter((_, j) => j !== i - 1);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  return orphans;
}

/** Whether the partial named `suffix` after ETAG.incomplete. has no live writer (PID-N: an earlier dynact's). */
function abandoned(file: string, suffix: string): boolean {
  const m = /^(?:([0-9a-f]{8})-)?(\d+)-\d+$/.exec(suffix);
  if (!m) return false; // not a name we made: leave the file alone
  if (m[1] === undefined || m[1] === PARTIAL_OWNER) return !alive(Number(m[2]));
  try {
    return Date.now() - statSync(file).mtimeMs > FOREIGN_STALE_MS;
  } catch {
    return false; // gone meanwhile
  }
}

/** Whether process `pid` exists in this PID namespace. */
function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true; // not a name we made: leave the file alone
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by another user
  }
}

async function transfer(remote: RemoteFile, part: string, label: string, opts: TransferOptions): Promise<void> {
  let have = bytesOnDisk(part);
  if (remote.size !== undefined && have > remote.size) have = 0; // not a prefix of this file: start over
  if (have === remote.size) return;
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (have > 0) headers.Range = `bytes=${have}-`;
  const res = await hubFetch(remote.url, { headers }, opts);
  if (res.status === 416 && have > 0) {
    // The server will not send from byte `have` (a CDN refusing ranges, or a partial already as long as a file
    // whose size was not announced). Kept, the partial would fail this run and every later one the same way:
    // start over from byte 0, which asks no range and so cannot be refused again.
    res.close();
    rmSync(part, { force: true });
    return transfer(remote, part, label, opts);
  }
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    let start = 0; // a 200 is the whole file, also from a server that ignores Range
    if (res.status === 206) {
      start = Number(/^bytes (\d+)-/.exec(res.header("content-range") ?? "")?.[1] ?? NaN);
      if (start !== have) throw discard(part, `asked to resume at byte ${have}, the server sent from ${res.header("content-range")}`);
    } else if (res.status !== 200) {
      throw statusError(res);
    }
    const length = res.header("content-length");
    if (remote.size !== undefined && length !== null && start + Number(length) !== remote.size) {
      throw discard(part, `wrong length: the server sends ${start + Number(length)} bytes, the file has ${remote.size}`);
    }
    file = await open(part, start === 0 ? "w" : "a");
    let done = start;
    opts.onProgress?.(label, done, remote.size);
    for await (const chunk of res.body()) {
      if (remote.size !== undefined && done + chunk.length > remote.size) {
        throw discard(part, `wrong length: the server sent more than the file's ${remote.size} bytes`);
      }
      await file.write(chunk);
      done += chunk.length;
      opts.onProgress?.(label, done, remote.size);
    }
    if (remote.size !== undefined && done < remote.size) {
      throw new InterruptedError(`the connection closed after ${done} of ${remote.size} bytes`);
    }
  } finally {
    res.close();
    await file?.close();
  }
}

/** The whole file is there: check its size and, when the ETag is one, its sha256. */
async function verify(remote: RemoteFile, part: string): Promise<void> {
  const size = bytesOnDisk(part);
  if (remote.size !== undefined && size !== remote.size) throw discard(part, `wrong length: got ${size} bytes, expected ${remote.size}`);
  if (!SHA256.test(remote.etag)) return; // a small (non-LFS) file: its ETag is a git object id
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(part)) hash.update(chunk as Buffer);
  const got = hash.digest("hex");
  if (got !== remote.etag) throw discard(part, `corrupt download: sha256 ${got}, expected ${remote.etag}`);
}

function bytesOnDisk(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

/** Bytes that cannot be part of the right file are deleted, so the next try starts clean. */
function discard(part: string, message: string): HubError {
  rmSync(part, { force: true });
  return new HubError(`${message} (the partial download was deleted; try again)`);
}
