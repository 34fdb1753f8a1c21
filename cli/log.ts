// Lines on stderr. On a terminal a progress line is rewritten in place (\r) and gets its newline only when its work
// is done; a line written meanwhile (a log line, the error that ends the run) ends it first, so that the two never
// share a line.
let open = false;

/** One line on stderr, after ending a progress line left open (`replace`: erasing it instead). */
export function logLine(line: string, replace = false): void {
  process.stderr.write(`${open ? (replace ? "\r\x1b[K" : "\n") : ""}${line}\n`);
  open = false;
}

/** The terminal's progress line, rewritten; `done` ends it. */
export function progressText(text: string, done: boolean): void {
  process.stderr.write(`\r${text}\x1b[K${done ? "\n" : ""}`);
  open = !done;
}
