// hf:OWNER/REPO[/FILE] downloads against a local imitation of the Hub on 127.0.0.1 (resolve URLs with the
// Hub's headers, LFS files behind a redirect, the /api/models file list), with injected faults: a dropped
// connection, a wrong length, a wrong sha256, 404, 500, a stall and a server that never answers.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resolveHubArgs } from "../cli/hub-args";
import { readLlama2cCheckpoint } from "../models/formats/llama2c";
import { writeSafetensors } from "../models/formats/safetensors";
import { PARTIAL_OWNER } from "../models/hub/blob";
import { hubCacheDir, RepoCache } from "../models/hub/cache";
import { cachedHubPath, downloadFromHub, type HubOptions } from "../models/hub/download";
import { HubError } from "../models/hub/hub-error";
import { parseHubSpec } from "../models/hub/spec";
import { loadModel } from "../models/load";
import { readLlama2cTokenizer } from "../models/tokenizer/sentencepiece-bpe";
import { TokenizerJson } from "../models/tokenizer/tokenizer-json";
import { readTensorData } from "../models/weights";
import { haveAssets, shared } from "./assets";
import { sentencePieceTokenizerJson } from "./sentencepiece-json";

type Fault = "drop" | "short" | "corrupt" | "404" | "500" | "stall" | "hang" | "pause" | "late" | "loop" | "416" | "429" | "429-long" | "503" | "401-gated" | "403";

/** The Hub as far as downloads see it. Faults are queued per file and hit its next data GET (or HEAD: "hang"). */
class FakeHub {
  readonly repos = new Map<string, { commit: string; files: Map<string, Buffer> }>();
  readonly log: { method: string; url: string; range?: string; redirected?: boolean }[] = [];
  readonly faults = new Map<string, Fault[]>();
  /** Renamed repos: resolve URLs of the old name redirect (relative, no file headers) to the new one. */
  readonly renames = new Map<string, string>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections(); // stalled responses too
    await new Promise((resolve) => this.server.close(resolve));
  }

  add(repo: string, files: Record<string, Buffer>): void {
    const commit = createHash("sha1").update(repo + Object.keys(files).join()).digest("hex");
    this.repos.set(repo, { commit, files: new Map(Object.entries(files)) });
  }

  fault(repo: string, file: string, ...faults: Fault[]): void {
    this.faults.set(`${repo}/${file}`, faults);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const entry: FakeHub["log"][number] = { method: req.method!, url: req.url!, range: req.headers.range };
    this.log.push(entry);
    const url = decodeURIComponent(req.url!);
    const api = /^\/api\/models\/([^/]+\/[^/]+)$/.exec(url);
    if (api) {
      const repo = this.repos.get(api[1]!);
      if (!repo) return void res.writeHead(404).end();
      const siblings = [...repo.files.keys()].map((rfilename) => ({ rfilename }));
      return void res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ id: api[1], sha: repo.commit, siblings }));
    }
    const moved = /^\/([^/]+\/[^/]+)\/resolve\/(.+)$/.exec(url);
    if (moved && this.renames.has(moved[1]!)) return void res.writeHead(307, { Location: `/${this.renames.get(moved[1]!)}/resolve/${moved[2]}` }).end();
    const lfs = /^\/lfs\/([^/]+\/[^/]+)\/(.+)$/.exec(url);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const [repoName, file] = lfs ? [lfs[1]!, lfs[2]!] : resolve ? [resolve[1]!, resolve[3]!] : [];
    const repo = repoName === undefined ? undefined : this.repos.get(repoName);
    const data = repo?.files.get(file!);
    if (!repo || !data || (resolve && resolve[2] !== "main" && resolve[2] !== repo.commit)) return void res.writeHead(404).end();
    const queue = this.faults.get(`${repoName}/${file}`) ?? [];
    if (queue[0] === "hang") return void queue.shift(); // never answer
    if (lfs && queue[0] === "loop") return void res.writeHead(302, { Location: req.url }).end(); // every time
    const isLfs = /\.(gguf|safetensors)$/.test(file!);
    const sha256 = createHash("sha256").update(data).digest("hex");
    const meta = {
      "X-Repo-Commit": repo.commit,
      ETag: `"${isLfs ? sha256 : createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex")}"`,
      ...(isLfs ? { "X-Linked-Etag": `"${sha256}"`, "X-Linked-Size": String(data.length) } : {}),
    };
    entry.redirected = resolve !== null && isLfs;
    if (entry.redirected) return void res.writeHead(302, { ...meta, Location: `/lfs/${repoName}/${file}` }).end();
    if (req.method === "HEAD") return void res.writeHead(200, { ...meta, "Content-Length": data.length }).end();
    this.serve(req, res, data, queue.shift());
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, fault: Fault | undefined): void {
    if (fault === "404" || fault === "500") return void res.writeHead(Number(fault)).end();
    if (fault === "401-gated") return void res.writeHead(401, { "X-Error-Code": "GatedRepo" }).end();
    if (fault === "403") return void res.writeHead(403).end();
    // Retry-After in seconds, or as an HTTP date (here: now).
    if (fault === "429" || fault === "429-long") return void res.writeHead(429, { "Retry-After": fault === "429" ? "0" : "120" }).end();
    if (fault === "503") return void res.writeHead(503, { "Retry-After": new Date().toUTCString() }).end();
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
    if (fault === "416" && req.headers.range) return void res.writeHead(416, { "Content-Range": `bytes */${data.length}` }).end();
    let body = data.subarray(from);
    if (fault === "corrupt") body = Buffer.concat([Buffer.from([body[0]! ^ 0xff]), body.subarray(1)]);
    if (fault === "short") body = body.subarray(0, body.length - 100);
    const headers = { "Content-Length": body.length, "Accept-Ranges": "bytes" };
    if (from > 0) res.writeHead(206, { ...headers, "Content-Range": `bytes ${from}-${data.length - 1}/${data.length}` });
    else res.writeHead(200, headers);
    if (fault === "stall") return void res.flushHeaders(); // headers, then silence
    if (fault === "pause") return void res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.end(body.subarray(body.length >> 1)), 300));
    if (fault === "late") {
      res.flushHeaders(); // the response starts at once, its body comes later
      return void setTimeout(() => res.end(body), 600);
    }
    if (fault === "drop") {
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), "dynact-hub-"));
const hub = new FakeHub();
let cache = "";
const previousCache = process.env.DYNACT_CACHE;

beforeAll(() => hub.start());
afterAll(async () => {
  await hub.close();
  if (previousCache === undefined) delete process.env.DYNACT_CACHE;
  else process.env.DYNACT_CACHE = previousCache;
  rmSync(dir, { recursive: true, force: true });
});
// Every test starts from an empty cache (loadModel finds it through DYNACT_CACHE) and a fresh request log.
let caches = 0;
beforeEach(() => {
  cache = path.join(dir, `cache-${caches++}`);
  process.env.DYNACT_CACHE = cache;
  hub.log.length = 0;
  hub.faults.clear();
  hub.renames.clear();
});

const opts = (extra: HubOptions = {}): HubOptions => ({ endpoint: hub.url, cacheDir: cache, timeoutMs: 2000, ...extra });
/** GETs that were answered with file bytes (not the file list, not the redirect to the LFS store). */
const dataGets = () => hub.log.filter((r) => r.method === "GET" && !r.url.startsWith("/api/") && !r.redirected);

async function failure(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

describe.runIf(haveAssets("models/stories260K.gguf", "models/stories260K.bin", "models/tok512.bin"))("hub downloads", () => {
  const gguf = readFileSync(shared("models/stories260K.gguf"));
  const GGUF = "hf:test/stories/stories260K.gguf";

  beforeAll(() => {
    const bin = readLlama2cCheckpoint(shared("models/stories260K.bin"));
    const folder = path.join(dir, "folder");
    writeSafetensors(folder, bin.config, (n) => readTensorData(bin, n === "output" ? "token_embd" : n), { dtype: "f32", tied: true });
    const tok = sentencePieceTokenizerJson(readLlama2cTokenizer(shared("models/tok512.bin")));
    const folderFile = (f: string) => readFileSync(path.join(folder, f));
    const common = {
      "config.json": folderFile("config.json"),
      "tokenizer.json": Buffer.from(JSON.stringify(tok.json)),
      "tokenizer_config.json": Buffer.from(JSON.stringify(tok.config)),
      "README.md": Buffer.from("# a test model\n"),
    };
    hub.add("test/stories", { "stories260K.gguf": gguf, "README.md": Buffer.from("# gguf only\n") });
    hub.add("test/folder", { ...common, "model.safetensors": folderFile("model.safetensors"), "other.gguf": gguf });
    // The same weights as one shard behind an index.
    const names = Object.keys(JSON.parse(folderFile("model.safetensors").subarray(8, 8 + Number(folderFile("model.safetensors").readBigUInt64LE(0))).toString()));
    const index = { metadata: {}, weight_map: Object.fromEntries(names.filter((n) => n !== "__metadata__").map((n) => [n, "model-00001-of-00001.safetensors"])) };
    hub.add("test/sharded", { ...common, "model.safetensors.index.json": Buffer.from(JSON.stringify(index)), "model-00001-of-00001.safetensors": folderFile("model.safetensors") });
    hub.add("test/two-ggufs", { "a.gguf": gguf, "b.gguf": gguf });
    hub.add("test/evil", { "../../../../escape.gguf": gguf });
  });

  it("downloads a file once into huggingface_hub's layout; loading it again makes no request", async () => {
    const progress: [number, number | undefined][] = [];
    const local = await downloadFromHub(GGUF, "model", opts({ onProgress: (_f, done, total) => progress.push([done, total]) }));
    expect(readFileSync(local).equals(gguf)).toBe(true);
    const sha = createHash("sha256").update(gguf).digest("hex");
    const repo = path.join(cache, "models--test--stories");
    const commit = readFileSync(path.join(repo, "refs", "main"), "utf8");
    expect(local).toBe(path.join(repo, "snapshots", commit, "stories260K.gguf"));
    expect(lstatSync(local).isSymbolicLink()).toBe(true);
    expect(readlinkSync(local)).toBe(path.join("..", "..", "blobs", sha));
    expect(readdirSync(path.join(repo, "blobs"))).toEqual([sha]); // no .incomplete left
    expect(progress.at(-1)).toEqual([gguf.length, gguf.length]);
    expect(hub.log.map((r) => [r.method, r.redirected])).toEqual([["HEAD", true], ["GET", true], ["GET", false]]);

    hub.log.length = 0;
    expect(await downloadFromHub(GGUF, "model", opts())).toBe(local);
    const loaded = loadModel(GGUF);
    expect(loaded.checkpoint.path).toBe(local);
    expect(loaded.tokenizer.encode("Once upon a time")).toEqual(loadModel(shared("models/stories260K.gguf")).tokenizer.encode("Once upon a time"));
    expect(hub.log).toEqual([]);
  });

  it("a repo with config.json + model.safetensors becomes a Hugging Face folder with its tokenizer.json", async () => {
    const local = await downloadFromHub("hf:test/folder", "model", opts());
    expect(readdirSync(local).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    expect(hub.log[0]).toMatchObject({ method: "GET", url: "/api/models/test/folder" });
    hub.log.length = 0;
    const loaded = loadModel("hf:test/folder");
    expect(loaded.checkpoint.format).toBe("safetensors");
    expect(loaded.tokenizer).toBeInstanceOf(TokenizerJson);
    expect(loaded.tokenizer.encode("Once upon a time")).toEqual(readLlama2cTokenizer(shared("models/tok512.bin")).encode("Once upon a time"));
    expect(await downloadFromHub("hf:test/folder", "model", opts())).toBe(local);
    expect(hub.log).toEqual([]);
  });

  it("a sharded folder: the index, then the shards it names, then config.json", async () => {
    const local = await downloadFromHub("hf:test/sharded", "model", opts());
    const order = hub.log.filter((r) => r.method === "HEAD").map((r) => r.url.split("/").at(-1));
    expect(order).toEqual(["tokenizer_config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00001.safetensors", "config.json"]);
    expect(loadModel(local).checkpoint.tensors.size).toBe(loadModel("hf:test/sharded").checkpoint.tensors.size);
  });

  it("a repo with only a GGUF gives that file; -t hf:REPO fetches just the tokenizer files", async () => {
    expect(path.basename(await downloadFromHub("hf:test/stories", "model", opts()))).toBe("stories260K.gguf");
    hub.log.length = 0;
    const tokDir = await downloadFromHub("hf:test/folder", "tokenizer", opts());
    expect(readdirSync(tokDir).sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    expect(dataGets().map((r) => r.url.split("/").at(-1))).toEqual(["tokenizer_config.json", "tokenizer.json"]);
    expect(loadModel("hf:test/stories", { tokenizer: "hf:test/folder" }).tokenizer).toBeInstanceOf(TokenizerJson);
    expect((await failure(downloadFromHub("hf:test/two-ggufs", "model", opts()))).message).toMatch(/2 GGUF files \(a\.gguf, b\.gguf\); pick one: hf:test\/two-ggufs\/FILE/);
  });

  it("a dropped connection is resumed with a Range request and completes", async () => {
    hub.fault("test/stories", "stories260K.gguf", "drop");
    const local = await downloadFromHub(GGUF, "model", opts());
    expect(readFileSync(local).equals(gguf)).toBe(true);
    const gets = dataGets();
    expect(gets).toHaveLength(2);
    expect(gets[0]!.range).toBeUndefined();
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it("an interrupted download is never used, and the next run resumes it", async () => {
    hub.fault("test/stories", "stories260K.gguf", "drop");
    expect((await failure(downloadFromHub(GGUF, "model", opts({ retries: 0 })))).message).toMatch(
      /^hf:test\/stories\/stories260K\.gguf: connection lost \((other side closed|ECONNRESET)\); to use a local copy instead, pass its path/);
    const blobs = path.join(cache, "models--test--stories", "blobs");
    const [part] = readdirSync(blobs);
    expect(part).toMatch(/\.incomplete$/);
    const have = lstatSync(path.join(blobs, part!)).size;
    expect(have).toBeGreaterThan(0);
    expect(() => loadModel(GGUF)).toThrow(/is not downloaded yet/);
    expect(() => cachedHubPath(GGUF)).toThrow(HubError);
    hub.log.length = 0;
    const local = await downloadFromHub(GGUF, "model", opts());
    expect(dataGets().map((r) => r.range)).toEqual([`bytes=${have}-`]);
    expect(readFileSync(local).equals(gguf)).toBe(true);
  });

  it("two downloads of one file at once both end with the verified file, never a corrupt blob", async () => {
    // The first sends half, pauses, then the rest; the second's response starts while the first is paused and
    // its body comes after the first has finished. With one shared partial file the second resumed the first's
    // and kept appending to it after the first had renamed it into place: a corrupt blob that later runs used.
    hub.fault("test/stories", "stories260K.gguf", "pause", "late");
    const blobs = path.join(cache, "models--test--stories", "blobs");
    const first = downloadFromHub(GGUF, "model", opts());
    while (!(existsSync(blobs) && readdirSync(blobs).some((f) => lstatSync(path.join(blobs, f)).size > 0))) await new Promise((r) => setTimeout(r, 5));
    const second = downloadFromHub(GGUF, "model", opts());
    for (const r of await Promise.allSettled([first, second])) {
      if (r.status === "fulfilled") expect(readFileSync(r.value).equals(gguf)).toBe(true);
      else expect(r.reason).toBeInstanceOf(HubError);
    }
    const sha = createHash("sha256").update(gguf).digest("hex");
    expect(readdirSync(blobs)).toEqual([sha]);
    expect(readFileSync(path.join(blobs, sha)).equals(gguf)).toBe(true);
    expect(readFileSync(cachedHubPath(GGUF)).equals(gguf)).toBe(true);
  });

  it("a partial file left by a killed process is resumed; a live process's is left alone", async () => {
    const sha = createHash("sha256").update(gguf).digest("hex");
    const blobs = path.join(cache, "models--test--stories", "blobs");
    mkdirSync(blobs, { recursive: true });
    const dead = 2 ** 31 - 2; // above any pid_max: no such process
    writeFileSync(path.join(blobs, `${sha}.incomplete.${dead}-1`), gguf.subarray(0, 1000));
    writeFileSync(path.join(blobs, `${sha}.incomplete.${dead - 1}-1`), gguf.subarray(0, 1000));
    const live = `${sha}.incomplete.${process.pid}-999`;
    writeFileSync(path.join(blobs, live), gguf.subarray(0, 2000));
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true);
    expect(dataGets().map((r) => r.range)).toEqual(["bytes=1000-"]);
    expect(readdirSync(blobs).sort()).toEqual([sha, live]);
  });

  it("another machine's or container's partial (its PIDs mean nothing here) is taken over only after an hour unwritten", async () => {
    const sha = createHash("sha256").update(gguf).digest("hex");
    const blobs = path.join(cache, "models--test--stories", "blobs");
    mkdirSync(blobs, { recursive: true });
    const foreign = PARTIAL_OWNER === "00000000" ? "11111111" : "00000000";
    const dead = 2 ** 31 - 2; // no such process here, which says nothing of the other namespace's
    const busy = `${sha}.incomplete.${foreign}-${dead}-1`;
    writeFileSync(path.join(blobs, busy), gguf.subarray(0, 1000));
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true);
    expect(dataGets().map((r) => r.range)).toEqual([undefined]); // its bytes were not taken: maybe still being written
    expect(readdirSync(blobs).sort()).toEqual([sha, busy]);
    // An hour later nothing has written it: abandoned, resumed (and our own dead process's partial alike).
    rmSync(path.join(blobs, sha));
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    utimesSync(path.join(blobs, busy), old, old);
    writeFileSync(path.join(blobs, `${sha}.incomplete.${PARTIAL_OWNER}-${dead}-1`), gguf.subarray(0, 1000));
    hub.log.length = 0;
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true);
    expect(dataGets().map((r) => r.range)).toEqual(["bytes=1000-"]);
    expect(readdirSync(blobs)).toEqual([sha]);
  });

  it("a server that refuses to resume (416) gets the whole file asked for instead", async () => {
    const sha = createHash("sha256").update(gguf).digest("hex");
    const blobs = path.join(cache, "models--test--stories", "blobs");
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(blobs, `${sha}.incomplete`), gguf.subarray(0, 1000)); // left by an earlier run
    hub.fault("test/stories", "stories260K.gguf", "416");
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true);
    expect(dataGets().map((r) => r.range)).toEqual(["bytes=1000-", undefined]);
    expect(readdirSync(blobs)).toEqual([sha]);
  });

  it("a wrong length or a wrong sha256 fails, deletes the partial file and leaves nothing usable", async () => {
    for (const [fault, pattern] of [["short", /wrong length: the server sends \d+ bytes, the file has \d+/], ["corrupt", /corrupt download: sha256 [0-9a-f]{64}, expected/]] as const) {
      hub.fault("test/stories", "stories260K.gguf", fault);
      expect((await failure(downloadFromHub(GGUF, "model", opts()))).message).toMatch(pattern);
      const blobs = path.join(cache, "models--test--stories", "blobs");
      expect(existsSync(blobs) ? readdirSync(blobs) : []).toEqual([]);
      expect(() => loadModel(GGUF)).toThrow(/is not downloaded yet/);
    }
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true); // healthy again
  });

  it("a file list naming a path outside the repo is refused before anything is written", async () => {
    const e = await failure(downloadFromHub("hf:test/evil", "model", opts()));
    expect(e.message).toMatch(/^hf:test\/evil: .*\/api\/models\/test\/evil listed a file name that is not a path inside the repo: "\.\.\/\.\.\/\.\.\/\.\.\/escape\.gguf"/);
    expect(hub.log.map((r) => r.url)).toEqual(["/api/models/test/evil"]);
    expect(existsSync(cache)).toBe(false);
    expect(() => new RepoCache(cache, "test/evil").link("c0ffee", "../../../x", "e7a9")).toThrow(/not a path inside the repo/);
  });

  it("follows the Hub's redirects for a renamed repo; a redirect loop is a one-line error", async () => {
    hub.renames.set("test/old-name", "test/stories");
    hub.renames.set("test/loop", "test/loop");
    const local = await downloadFromHub("hf:test/old-name/stories260K.gguf", "model", opts());
    expect(readFileSync(local).equals(gguf)).toBe(true);
    expect(hub.log.filter((r) => r.method === "HEAD").map((r) => r.url)).toEqual(["/test/old-name/resolve/main/stories260K.gguf", "/test/stories/resolve/main/stories260K.gguf"]);
    expect(readFileSync(await downloadFromHub("hf:test/old-name/README.md", "model", opts()))).toEqual(Buffer.from("# gguf only\n"));
    const loop = await failure(downloadFromHub("hf:test/loop/x.gguf", "model", opts()));
    expect(loop.message).toMatch(/^hf:test\/loop\/x\.gguf: too many redirects from http:\/\/127\.0\.0\.1:\d+ for x\.gguf \(a redirect loop\?\); to use a local copy/);
    hub.fault("test/stories", "stories260K.gguf", "loop");
    const cdnLoop = await failure(downloadFromHub(GGUF, "model", opts()));
    expect(cdnLoop.message).toMatch(/^hf:test\/stories\/stories260K\.gguf: too many redirects from http:\/\/127\.0\.0\.1:\d+ \(a redirect loop\?\); to use a local copy/);
  });

  it("a busy server (429, 503) is asked again after its Retry-After; a longer wait than we would is an error saying when", async () => {
    hub.fault("test/stories", "stories260K.gguf", "429", "503");
    const start = performance.now();
    expect(readFileSync(await downloadFromHub(GGUF, "model", opts())).equals(gguf)).toBe(true);
    expect(performance.now() - start).toBeLessThan(1500);
    expect(dataGets()).toHaveLength(3);
    rmSync(cache, { recursive: true });
    hub.fault("test/stories", "stories260K.gguf", "429-long");
    expect((await failure(downloadFromHub(GGUF, "model", opts()))).message).toMatch(
      /^hf:test\/stories\/stories260K\.gguf: too many requests: the server limits their rate \(HTTP 429\); try again in 120 s; to use a local copy/);
    hub.fault("test/stories", "stories260K.gguf", "503", "503");
    expect((await failure(downloadFromHub(GGUF, "model", opts({ retries: 1 })))).message).toMatch(
      /^hf:test\/stories\/stories260K\.gguf: the server is unavailable \(HTTP 503\); try again later; to use a local copy/);
  });

  it("401/403: a gated repo says to accept its conditions and set HF_TOKEN; with a token, that the token has no access", async () => {
    hub.fault("test/stories", "stories260K.gguf", "401-gated", "401-gated", "403", "403");
    const gated = await failure(downloadFromHub(GGUF, "model", opts({ token: "" })));
    expect(gated.message).toMatch(/^hf:test\/stories\/stories260K\.gguf: access denied \(HTTP 401\): a gated repo: accept its conditions on its Hub page, then set HF_TOKEN to a token of that account; to use a local copy/);
    expect((await failure(downloadFromHub(GGUF, "model", opts({ token: "hf_x" })))).message).toMatch(/a gated repo: .*, then the token in HF_TOKEN \(of that account\) has access;/);
    expect((await failure(downloadFromHub(GGUF, "model", opts({ token: "" })))).message).toMatch(/access denied \(HTTP 403\): a gated or private repo needs a token in HF_TOKEN;/);
    expect((await failure(downloadFromHub(GGUF, "model", opts({ token: "hf_x" })))).message).toMatch(/access denied \(HTTP 403\) with the token in HF_TOKEN: is it valid, and does it have access to this repo\?;/);
  });

  it("a cache folder that cannot be written is a one-line error that says so and names DYNACT_CACHE", async () => {
    const file = path.join(dir, "a-file");
    writeFileSync(file, "");
    const e = await failure(downloadFromHub(GGUF, "model", opts({ cacheDir: path.join(file, "cache") })));
    expect(e.message).toMatch(/^hf:test\/stories\/stories260K\.gguf: cannot write the download cache \(ENOTDIR: .*\); set DYNACT_CACHE to another folder, or to use a local copy/);
    expect(e.message).not.toContain("\n");
  });

  it("404 and 500 are one-line errors telling how to pass a local file", async () => {
    const missing = await failure(downloadFromHub("hf:test/stories/nope.gguf", "model", opts()));
    expect(missing.message).toBe("hf:test/stories/nope.gguf: not found (HTTP 404); to use a local copy instead, pass its path (-m FILE, -t FILE)");
    expect((await failure(downloadFromHub("hf:test/no-such-repo", "model", opts()))).message).toMatch(/^hf:test\/no-such-repo: not found \(HTTP 404\)/);
    hub.fault("test/stories", "stories260K.gguf", "500");
    const server = await failure(downloadFromHub(GGUF, "model", opts()));
    expect(server.message).toMatch(/^hf:test\/stories\/stories260K\.gguf: the server answered HTTP 500; .*-m FILE/);
    expect(server.message).not.toContain("\n");
  });

  it("a stalled body or a server that never answers times out instead of hanging", async () => {
    for (const fault of ["stall", "hang"] as const) {
      hub.fault("test/stories", "stories260K.gguf", fault);
      const start = performance.now();
      expect((await failure(downloadFromHub(GGUF, "model", opts({ timeoutMs: 300 })))).message).toMatch(/no answer from http:\/\/127\.0\.0\.1:\d+ for 0\.3 s \(timed out\)/);
      expect(performance.now() - start).toBeLessThan(3000);
    }
  });

  it("offline (nothing listening) says so", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const e = await failure(downloadFromHub(GGUF, "model", opts({ endpoint })));
    expect(e.message).toMatch(/^hf:test\/stories\/stories260K\.gguf: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); to use a local copy instead/);
  });

  it("finds a model that Python's huggingface_hub downloaded, with no server at all", () => {
    const repo = path.join(cache, "models--py--model");
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const sha = createHash("sha256").update(gguf).digest("hex");
    mkdirSync(path.join(repo, "blobs"), { recursive: true });
    writeFileSync(path.join(repo, "blobs", sha), gguf);
    mkdirSync(path.join(repo, "snapshots", commit), { recursive: true });
    symlinkSync(`../../blobs/${sha}`, path.join(repo, "snapshots", commit, "model.gguf"));
    mkdirSync(path.join(repo, "refs"));
    writeFileSync(path.join(repo, "refs", "main"), commit);
    expect(loadModel("hf:py/model").checkpoint.format).toBe("gguf");
    expect(loadModel("hf:py/model/model.gguf").checkpoint.config.vocabSize).toBe(512);
    expect(hub.log).toEqual([]);
  });

  it("the CLI resolves -m/--model=/-t hf: values before the command runs, but not for --help", async () => {
    hub.log.length = 0;
    const previous = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = hub.url;
    try {
      const args = await resolveHubArgs(["-m", GGUF, "-p", "hf:not/a-flag-value", "--tokenizer=hf:test/folder", "-mhf:test/stories"]);
      expect(args[1]).toBe(cachedHubPath(GGUF));
      expect(args[3]).toBe("hf:not/a-flag-value");
      expect(args[4]).toBe(`--tokenizer=${cachedHubPath("hf:test/folder", "tokenizer")}`);
      expect(args[5]).toBe(`-m${cachedHubPath(GGUF)}`);
      hub.log.length = 0;
      expect(await resolveHubArgs(["-m", "hf:x/y", "--help"])).toEqual(["-m", "hf:x/y", "--help"]);
      expect(hub.log).toEqual([]);
    } finally {
      if (previous === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = previous;
    }
  });

  const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");
  it.runIf(existsSync(CLI))("dynact inspect -m hf:… downloads quietly off a terminal; failures are one line, exit 1", async () => {
    const run = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      // Asynchronous: the server answering it lives in this process.
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, HF_ENDPOINT: hub.url } }, (err, stdout, stderr) =>
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr }));
    });
    const ok = await run("inspect", "-m", GGUF, "--json");
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe("");
    expect(JSON.parse(ok.stdout).config.vocabSize).toBe(512);
    const bad = await run("inspect", "-m", "hf:test/stories/missing.gguf");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toBe("dynact: hf:test/stories/missing.gguf: not found (HTTP 404); to use a local copy instead, pass its path (-m FILE, -t FILE)\n");
  });
});

describe("hf: names and the cache location", () => {
  it("parses OWNER/REPO[/FILE] and refuses paths that could leave the cache", () => {
    expect(parseHubSpec("hf:a/b")).toEqual({ repo: "a/b" });
    expect(parseHubSpec("hf:TheBloke/x.y-z/sub/m.gguf")).toMatchObject({ repo: "TheBloke/x.y-z", file: "sub/m.gguf" });
    for (const bad of ["hf:", "hf:a", "hf:a/", "hf:a/b/", "hf:../b", "hf:a/b/../../x", "hf:a/b/./x", "hf:a/b//c", "hf:a/b/c\\d", "hf:a/b/c\0", "hf:.a/b"]) {
      expect(() => parseHubSpec(bad), bad).toThrow(/expected hf:OWNER\/REPO or hf:OWNER\/REPO\/FILE/);
    }
  });

  it("uses DYNACT_CACHE, else huggingface_hub's cache (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, ~/.cache)", () => {
    expect(hubCacheDir({ DYNACT_CACHE: "/d", HF_HUB_CACHE: "/h" })).toBe("/d");
    expect(hubCacheDir({ HF_HUB_CACHE: "/h", HF_HOME: "/home" })).toBe("/h");
    expect(hubCacheDir({ HF_HOME: "/home", XDG_CACHE_HOME: "/x" })).toBe("/home/hub");
    expect(hubCacheDir({ XDG_CACHE_HOME: "/x" })).toBe("/x/huggingface/hub");
    expect(hubCacheDir({})).toBe(path.join(os.homedir(), ".cache", "huggingface", "hub"));
  });
});
