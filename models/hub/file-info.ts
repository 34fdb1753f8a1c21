// What the Hub says about one file before we download it, from a HEAD on its resolve URL: the commit it belongs
// to, its ETag (the sha256 of an LFS file, which names the blob in the cache) and its size. For LFS files the
// Hub answers with a redirect to its CDN and puts these in X-Linked-* headers, so the redirect is not followed.
import { HubError } from "./hub-error";
import { hubFetch, statusError, type HttpOptions } from "./http";

/** Commits and ETags name folders and files in the cache: nothing that could be a path. */
export const isSafeName = (s: string): boolean => /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(s);

export interface RemoteFile {
  /** Where the bytes come from (the Hub may redirect it to a CDN). */
  url: string;
  commit: string;
  etag: string;
  /** Bytes, when the server announced them. */
  size?: number;
}

export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const encoded = file.split("/").map(encodeURIComponent).join("/");
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encoded}`;
}

export async function fileInfo(endpoint: string, repo: string, revision: string, file: string, opts: HttpOptions): Promise<RemoteFile> {
  const url = resolveUrl(endpoint, repo, revision, file);
  const res = await hubFetch(url, { method: "HEAD", redirect: "manual", headers: { "Accept-Encoding": "identity" } }, opts);
  res.close();
  if (res.status >= 400) throw statusError(res.status);
  const commit = res.header("x-repo-commit");
  const etag = (res.header("x-linked-etag") ?? res.header("etag"))?.replace(/^W\//, "").replaceAll('"', "");
  if (!commit || !etag) throw new HubError(`${endpoint} did not answer like the Hugging Face Hub (no X-Repo-Commit or ETag for ${file})`);
  if (!isSafeName(commit) || !isSafeName(etag)) throw new HubError(`${endpoint} sent an unusable commit or ETag for ${file}`);
  // A redirect's Content-Length is that of its own (empty) body, not the file's.
  const size = res.header("x-linked-size") ?? (res.status < 300 ? res.header("content-length") : null);
  const info: RemoteFile = { url, commit, etag };
  if (size !== null && /^\d+$/.test(size)) info.size = Number(size);
  return info;
}
