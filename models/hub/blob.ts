// One file from the Hub into the cache's blobs/ETAG: the bytes go to ETAG.incomplete (resumed with an HTTP Range
// request after a drop, here or in a later run), are checked against the announced size and, for LFS files, the
// sha256 that is their ETag, and only then renamed into place. A broken download is never used.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
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
  const part = cache.incomplete(remote.etag);
  mkdirSync(path.dirname(part), { recursive: true });
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
  renameSync(part, blob);
}

async function transfer(remote: RemoteFile, part: string, label: string, opts: TransferOptions): Promise<void> {
  let have = bytesOnDisk(part);
  if (remote.size !== undefined && have > remote.size) have = 0; // not a prefix of this file: start over
  if (have === remote.size) return;
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (have > 0) headers.Range = `bytes=${have}-`;
  const res = await hubFetch(remote.url, { headers }, opts);
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    let start = 0; // a 200 is the whole file, also from a server that ignores Range
    if (res.status === 206) {
      start = Number(/^bytes (\d+)-/.exec(res.header("content-range") ?? "")?.[1] ?? NaN);
      if (start !== have) throw discard(part, `asked to resume at byte ${have}, the server sent from ${res.header("content-range")}`);
    } else if (res.status !== 200) {
      throw statusError(res.status);
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
