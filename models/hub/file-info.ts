// What the Hub says about one file before we download it, from a HEAD on its resolve URL: the commit it belongs
// to, its ETag (the sha256 of an LFS file, which names the blob in the cache) and its size. For LFS files the
// Hub answers with a redirect to its CDN and puts these in X-Linked-* headers, so that redirect is not followed.
import { HubError } from "./hub-error";
import { hubFetch, statusError, type HttpOptions, type HubResponse } from "./http";

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

const MAX_REDIRECTS = 10;

export async function fileInfo(endpoint: string, repo: string, revision: string, file: string, opts: HttpOptions): Promise<RemoteFile> {
  let url = resolveUrl(endpoint, repo, revision, file);
  let res: HubResponse;
  for (let hops = 0; ; hops++) {
    res = await hubFetch(url, { method: "HEAD", redirect: "manual", headers: { "Accept-Encoding": "identity" } }, opts);
    res.close();
    // A redirect to another path on the Hub itself (a renamed repo) says nothing about the file: follow it, as
    // huggingface_hub does. One that describes the file (X-Repo-Commit), to the CDN, is the answer.
    const location = res.status >= 300 && res.status < 400 && !res.header("x-repo-commit") ? res.header("location") : null;
    const next = location === null ? undefined : new URL(location, url);
    if (next === undefined || next.origin !== new URL(url).origin) break;
    if (hops === MAX_REDIRECTS) throw new HubError(`too many redirects from ${next.origin} for ${file} (a redirect loop?)`);
    url = next.href;
  }
  if (res.status >= 400) throw statusError(res);
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
