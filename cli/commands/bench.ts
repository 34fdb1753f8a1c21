import { runDecodeBench } from "../../bench/decode";
import { shapeByName, SHAPES } from "../../bench/shapes";
import { isPosInt, number, parse } from "../args";
import { UsageError } from "../usage-error";

export const help = `dynact bench decode [--shapes A,B] [--steps N] [--rounds R] [--json]

Decode speed on deterministic random-weight models (f32, one thread, greedy from BOS), written once to
$DYNACT_BENCH_DIR (default: the system temp dir). Shapes: ${SHAPES.map((s) => s.name).join(", ")}.
When LLAMA2C_RUN points to a built llama2.c \`run\`, the same checkpoints run through it in the same session,
interleaved round by round; the report gives medians, ranges and the ratio of medians.

      --shapes A,B   which shapes (default: all)
      --steps N      positions per measurement, from BOS (default 256)
      --rounds R     interleaved rounds (default 5)
      --threads T,U  thread counts for dynact (default 1; llama2.c runs single-threaded)
      --json         print {"decode":[{"shape","dtype","threads","tokens_per_second",…}]}`;

export async function run(argv: string[]): Promise<void> {
  const [suite, ...rest] = argv;
  if (suite === "--help" || suite === "-h") return void console.log(help);
  if (suite !== "decode") throw new UsageError(`unknown benchmark '${suite ?? ""}' (available: decode)`);
  const { values: v } = parse(rest, {
    shapes: { type: "string" },
    steps: { type: "string" },
    rounds: { type: "string" },
    threads: { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (v.help) return void console.log(help);
  let shapes;
  try {
    shapes = v.shapes?.split(",").map(shapeByName);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const steps = number(v.steps, "--steps", 256, (n) => isPosInt(n) && n >= 2, "an integer >= 2");
  const rounds = number(v.rounds, "--rounds", 5, isPosInt, "a positive integer");
  const threads = (v.threads ?? "1").split(",").map((t) => number(t, "--threads", 1, isPosInt, "comma-separated positive integers"));
  const results = runDecodeBench({ shapes, steps, rounds, threads, log: (l) => process.stderr.write(`${l}\n`) });
  if (v.json) return void console.log(JSON.stringify({ decode: results }));
  const fmt = (x: { median: number; min: number; max: number }) =>
    `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;
  for (const r of results) {
    console.log(`${r.shape.padEnd(12)} f32 ${r.threads} thread${r.threads > 1 ? "s" : ""}: dynact ${fmt(r.tokens_per_second)} tok/s` +
      (r.llama2c_tokens_per_second
        ? `, llama2.c ${fmt(r.llama2c_tokens_per_second)} tok/s, ratio ${r.ratio_vs_llama2c!.toFixed(2)}×`
        : ""));
  }
}
