// The study's matrix: for each model, MLP strategies × targets and attention head gates × KV policies.
// `sparsity` is the x-axis of the plots: the target sparsity where the gate has one (cats, topk, griffin, heads),
// otherwise the sparsity measured for the cell (cett).

export type Family = "dense" | "cett" | "cett-global" | "cats" | "topk" | "griffin" | "tda" | "teal" | "predictor" | "heads-norm" |
  "heads-topk" | "heads-predictor";

export interface CellSpec {
  model: string;
  family: Family;
  /** The gate's parameter: a target sparsity, a CETT target, or a kept fraction of heads. */
  target: number;
  ffnGate: string;
  headGate: string;
  kvPolicy: "keep" | "skip";
}

export interface MatrixOptions {
  quick: boolean;
  /** Predictor files per model (from fit-predictors), when available. */
  predictors?: Map<string, string>;
  /** Head predictor files per model (fit-predictors --heads), when available. */
  headPredictors?: Map<string, string>;
}

export function studyMatrix(models: string[], opts: MatrixOptions): CellSpec[] {
  const cells: CellSpec[] = [];
  const sparsities = opts.quick ? [0.5, 0.9] : [0.3, 0.5, 0.7, 0.9];
  const cetts = opts.quick ? [0.2] : [0.05, 0.1, 0.2, 0.3];
  const headKeeps = opts.quick ? [0.5] : [0.75, 0.5];
  for (const model of models) {
    const ffn = (family: Family, target: number, ffnGate: string): CellSpec =>
      ({ model, family, target, ffnGate, headGate: "dense", kvPolicy: "keep" });
    cells.push(ffn("dense", 0, "dense"));
    for (const t of cetts) cells.push(ffn("cett", t, `cett:${t}`));
    cells.push(ffn("cett-global", 0.2, "cett-global:0.2"));
    cells.push(ffn("tda", 0.2, "tda:0.2"));
    for (const s of sparsities) {
      cells.push(ffn("cats", s, `cats:${s}`));
      cells.push(ffn("topk", s, `topk:${round(1 - s)}`));
      cells.push(ffn("griffin", s, `griffin:${round(1 - s)}`));
      cells.push(ffn("teal", s, `teal:${s}`));
    }
    const predictor = opts.predictors?.get(model);
    if (predictor) cells.push(ffn("predictor", 0, `predictor:${predictor}`));
    for (const keep of headKeeps) {
      for (const kvPolicy of ["keep", "skip"] as const) {
        cells.push({ model, family: "heads-norm", target: round(1 - keep), ffnGate: "dense", headGate: `norm:${keep}`, kvPolicy });
        cells.push({ model, family: "heads-topk", target: round(1 - keep), ffnGate: "dense", headGate: `topk:${keep}`, kvPolicy });
        const hp = opts.headPredictors?.get(model);
        if (hp) {
          cells.push({ model, family: "heads-predictor", target: round(1 - keep), ffnGate: "dense", headGate: `predictor:${hp}:topk:${keep}`, kvPolicy });
        }
      }
    }
  }
  return cells;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export function cellLabel(c: CellSpec): string {
  const heads = c.headGate === "dense" ? "" : ` heads ${c.headGate} kv ${c.kvPolicy}`;
  return `${c.ffnGate}${heads}`;
}
