// `hf:OWNER/REPO[/FILE]`: a model or file on the Hugging Face Hub, as -m and -t accept it.
import { HubError } from "./hub-error";

export interface HubSpec {
  /** OWNER/REPO */
  repo: string;
  /** A path inside the repo; absent for the whole repo. */
  file?: string;
}

const PREFIX = "hf:";
// Hub repo names: letters, digits, '-', '_', '.'; not starting with '.' or '-'.
const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/**
 * A file path inside a repo that stays inside the folder it is joined onto: no empty, '.' or '..' segments (so
 * not absolute either), no backslashes or NUL. For the names a user types and the names a server lists alike.
 */
export function isRepoPath(file: string): boolean {
  return file.split("/").every((seg) => seg !== "" && seg !== "." && seg !== ".." && !/[\\\0]/.test(seg));
}

export function isHubSpec(s: string): boolean {
  return s.startsWith(PREFIX);
}

export function parseHubSpec(text: string): HubSpec {
  const parts = text.slice(PREFIX.length).split("/");
  const [owner, name, ...file] = parts;
  const bad = !isHubSpec(text) || owner === undefined || name === undefined || !NAME.test(owner) || !NAME.test(name) ||
    // The file is joined onto the cache folder.
    (file.length > 0 && !isRepoPath(file.join("/")));
  if (bad) throw new HubError(`${text}: expected hf:OWNER/REPO or hf:OWNER/REPO/FILE`);
  return file.length > 0 ? { repo: `${owner}/${name}`, file: file.join("/") } : { repo: `${owner}/${name}` };
}
