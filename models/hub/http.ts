// HTTP to the Hub: fetch under an idle deadline (a server that stops answering or stops sending fails the request
// instead of hanging it), with failures described in a few words for a one-line error.
import { HubError, InterruptedError } from "./hub-error";

export interface HttpOptions {
  /** Give up when no response, or no body data, arrives for this long. */
  timeoutMs: number;
  /** Sent as a Bearer token (gated and private repos). */
  token?: string;
  /** Times to ask again after a busy answer (429, 502, 503, 504); default 0. */
  retries?: number;
}

export interface HubRequest {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** "manual" to read a redirect's own headers (the Hub puts a file's size and hash on its 302). */
  redirect?: "follow" | "manual";
}

export class HubResponse {
  constructor(
    private readonly res: Response,
    private readonly deadline: Deadline,
    /** Whether the request carried HF_TOKEN: then a 401/403 is not for the want of one. */
    readonly withToken = false,
  ) {}

  get status(): number {
    return this.res.status;
  }

  header(name: string): string | null {
    return this.res.headers.get(name);
  }

  /** The body, chunk by chunk; a drop or a stall is an InterruptedError. */
  async *body(): AsyncGenerator<Uint8Array> {
    if (!this.res.body) return;
    const reader = this.res.body.getReader();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new InterruptedError(this.deadline.expired ? this.deadline.message : `connection lost (${reason(e)})`);
        }
        if (chunk.done) return;
        this.deadline.restart();
        yield chunk.value;
      }
    } finally {
      this.deadline.clear();
      reader.cancel().catch(() => {}); // a no-op once the body is done; frees the connection when it is not
    }
  }

  async text(): Promise<string> {
    let text = "";
    const utf8 = new TextDecoder();
    for await (const chunk of this.body()) text += utf8.decode(chunk, { stream: true });
    return text + utf8.decode();
  }

  /** Done with this response: drop what is left of the body and stop the clock. */
  close(): void {
    this.deadline.clear();
    this.res.body?.cancel().catch(() => {}); // the connection may already be gone
  }
}

// "Try again later": a rate limit, or a gateway or server that is briefly down.
const BUSY = new Set([429, 502, 503, 504]);

/**
 * `url` fetched; a busy answer is asked again after the wait its Retry-After names (else 1, 2, 4 s), up to
 * `opts.retries` times, unless that wait is longer than `timeoutMs`, the longest we wait for any answer: then
 * the busy response is returned, for statusError to say when to try again.
 */
export async function hubFetch(url: string, req: HubRequest, opts: HttpOptions): Promise<HubResponse> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetchOnce(url, req, opts);
    if (!BUSY.has(res.status) || attempt >= (opts.retries ?? 0)) return res;
    const wait = retryAfter(res) ?? 2 ** attempt;
    if (wait * 1000 > opts.timeoutMs) return res;
    res.close();
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
}

/** Seconds the server asks us to wait (Retry-After: seconds or an HTTP date), if it says. */
function retryAfter(res: HubResponse): number | undefined {
  const value = res.header("retry-after")?.trim();
  if (!value) return undefined;
  const seconds = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isNaN(seconds) ? undefined : Math.max(0, Math.ceil(seconds));
}

async function fetchOnce(url: string, req: HubRequest, opts: HttpOptions): Promise<HubResponse> {
  const deadline = new Deadline(opts.timeoutMs, url);
  const headers: Record<string, string> = { ...req.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  try {
    const res = await fetch(url, { method: req.method ?? "GET", headers, redirect: req.redirect ?? "follow", signal: deadline.signal });
    return new HubResponse(res, deadline, headers.Authorization !== undefined);
  } catch (e) {
    deadline.clear();
    if (deadline.expired) throw new HubError(deadline.message);
    const why = reason(e);
    // undici's words when a server keeps redirecting (20 hops): not a host that cannot be reached.
    if (why === "redirect count exceeded") throw new HubError(`too many redirects from ${new URL(url).origin} (a redirect loop?)`);
    throw new HubError(`cannot reach ${new URL(url).origin} (${why})`);
  }
}

/**
 * What went wrong with a fetch, in a word or two: undici hides the socket's error code in `cause`. The system's
 * codes (ECONNREFUSED, ENOTFOUND, …) are what users search for; undici's own (UND_ERR_SOCKET) say less than its
 * message ("other side closed").
 */
function reason(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code?.startsWith("UND_ERR") ? undefined : cause?.code;
  return code ?? cause?.message ?? (e as Error).message ?? String(e);
}

/** Aborts the request when it is not restarted within `ms`. */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  expired = false;

  constructor(
    private readonly ms: number,
    private readonly url: string,
  ) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.controller.abort();
    }, ms);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get message(): string {
    return `no answer from ${new URL(this.url).origin} for ${this.ms / 1000} s (timed out)`;
  }

  restart(): void {
    this.timer.refresh();
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/** An HTTP error status in words, with what to do about the common ones. */
export function statusError(res: HubResponse): HubError {
  const status = res.status;
  if (status === 404) return new HubError("not found (HTTP 404)");
  if (status === 401 || status === 403) {
    // The Hub names the case in X-Error-Code: GatedRepo (terms to accept first), RepoNotFound (or private).
    const code = res.header("x-error-code");
    if (code === "GatedRepo") {
      return new HubError(`access denied (HTTP ${status}): a gated repo: accept its conditions on its Hub page, then ` +
        (res.withToken ? "the token in HF_TOKEN (of that account) has access" : "set HF_TOKEN to a token of that account"));
    }
    if (res.withToken) return new HubError(`access denied (HTTP ${status}) with the token in HF_TOKEN: is it valid, and does it have access to this repo?`);
    const what = code === "RepoNotFound" ? "not found, or private" : "access denied";
    return new HubError(`${what} (HTTP ${status}): a gated or private repo needs a token in HF_TOKEN`);
  }
  if (BUSY.has(status)) {
    const wait = retryAfter(res);
    const what = status === 429 ? "too many requests: the server limits their rate" : "the server is unavailable";
    return new HubError(`${what} (HTTP ${status}); try again ${wait ? `in ${wait} s` : "later"}`);
  }
  return new HubError(`the server answered HTTP ${status}`);
}
