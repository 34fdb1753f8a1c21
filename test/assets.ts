// The real checkpoints and texts in ../shared. In CI (CI=true) a missing asset fails the suite; elsewhere the
// suite is skipped with a visible message.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const SHARED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../shared");

export function shared(rel: string): string {
  return path.join(SHARED, rel);
}

/** True when every named asset exists. Missing in CI: throws. Missing elsewhere: warns once and returns false. */
export function haveAssets(...rels: string[]): boolean {
  const missing = rels.filter((r) => !existsSync(shared(r)));
  if (missing.length === 0) return true;
  const msg = `missing shared assets: ${missing.join(", ")} (expected under ${SHARED})`;
  if (process.env.CI === "true") throw new Error(msg);
  console.warn(`SKIPPING: ${msg}`);
  return false;
}

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
