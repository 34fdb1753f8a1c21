// Checkpoint load time against `cat FILE > /dev/null` on the same file from a warm page cache, interleaved: the
// loader streams the file into engine memory, so reading the file is the floor.
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { buildModel, openCheckpoint } from "../models/load";
import { randomLlama2cModel } from "./random-model";
import type { BenchShape } from "./shapes";
import { summarize, type Summary } from "./stats";

export interface LoadBenchRow {
  shape: string;
  bytes: number;
  load_ms: Summary;
  cat_ms: Summary;
  /** median(load) / median(cat) */
  ratio: number;
}

export function runLoadBench(opts: { shapes: BenchShape[]; rounds?: number; log?: (l: string) => void }): LoadBenchRow[] {
  return opts.shapes.map((shape) => {
    const file = randomLlama2cModel(shape.name, shape.config);
    const cat = () => {
      const t0 = performance.now();
      spawnSync("sh", ["-c", `cat "${file}" > /dev/null`]);
      return performance.now() - t0;
    };
    cat(); // warm the page cache
    const loads: number[] = [];
    const cats: number[] = [];
    for (let r = 0; r < (opts.rounds ?? 5); r++) {
      cats.push(cat());
      const t0 = performance.now();
      buildModel(openCheckpoint(file));
      loads.push(performance.now() - t0);
      opts.log?.(`round ${r + 1} ${shape.name}: load ${loads.at(-1)!.toFixed(0)} ms, cat ${cats.at(-1)!.toFixed(0)} ms`);
    }
    const load = summarize(loads);
    const c = summarize(cats);
    return { shape: shape.name, bytes: statSync(file).size, load_ms: load, cat_ms: c, ratio: load.median / c.median };
  });
}
