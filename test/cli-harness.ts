// Running the built CLI as a user does (a child process) and checking the failure contract: nothing on stdout,
// one `dynact: …` line on stderr, the exit code, and no stack trace.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function dynact(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function expectFailure(r: CliResult, code: 1 | 2, pattern: RegExp): void {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe("");
  expect(r.stderr.split("\n")[0]).toMatch(/^dynact: /);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}
