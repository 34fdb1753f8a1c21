// Per-layer statistics of the MLP under a neuron gate, summed over tokens: active fraction, achieved CETT
// (mask mode only: it needs the dropped neurons' values) and the fraction of FFN multiply-adds done.
export interface FfnStatsSummary {
  tokens: number;
  active_fraction: number[];
  /** null where CETT was not measured (dense or gather mode). */
  cett: (number | null)[];
  /** Includes the gate's own multiply-adds (a predictor's), which gate_mac_fraction shows alone. */
  ffn_mac_fraction: number[];
  gate_mac_fraction: number[];
  /** Gates with an oracle in mask mode (predictors): their choice against the oracle set, pooled over tokens. */
  oracle?: { recall: number[]; precision: number[]; active_fraction: number[] };
}

export class FfnStats {
  private tokens: number[];
  private active: number[];
  private cett: number[];
  private cettTokens: number[];
  private macs: number[];
  private denseMacs: number[];
  private gateMacs: number[];
  private scored: number[]; // Σ hidden over tokens scored against the oracle
  private chosen: number[]; // Σ |S| over tokens scored against the oracle
  private inOracle: number[]; // Σ |oracle set|
  private hits: number[]; // Σ |S ∩ oracle set|

  constructor(readonly nLayers: number) {
    const zeros = () => new Array<number>(nLayers).fill(0);
    this.tokens = zeros();
    this.active = zeros();
    this.cett = zeros();
    this.cettTokens = zeros();
    this.macs = zeros();
    this.denseMacs = zeros();
    this.gateMacs = zeros();
    this.scored = zeros();
    this.chosen = zeros();
    this.inOracle = zeros();
    this.hits = zeros();
  }

  record(l: number, activeFraction: number, macs: number, denseMacs: number, cett: number | null, gateMacs = 0): void {
    this.tokens[l]++;
    this.active[l] += activeFraction;
    this.macs[l] += macs + gateMacs;
    this.gateMacs[l] += gateMacs;
    this.denseMacs[l] += denseMacs;
    if (cett !== null) {
      this.cett[l] += cett;
      this.cettTokens[l]++;
    }
  }

  /** One token of layer l: of `hidden` neurons the gate chose `chosen`, the oracle `inOracle`, `hits` both. */
  recordOracle(l: number, hidden: number, chosen: number, inOracle: number, hits: number): void {
    this.scored[l] += hidden;
    this.chosen[l] += chosen;
    this.inOracle[l] += inOracle;
    this.hits[l] += hits;
  }

  summary(): FfnStatsSummary {
    const s: FfnStatsSummary = {
      tokens: this.tokens[0] ?? 0,
      active_fraction: this.active.map((a, l) => (this.tokens[l] ? a / this.tokens[l] : 0)),
      cett: this.cett.map((c, l) => (this.cettTokens[l] ? c / this.cettTokens[l] : null)),
      ffn_mac_fraction: this.macs.map((m, l) => (this.denseMacs[l] ? m / this.denseMacs[l] : 0)),
      gate_mac_fraction: this.gateMacs.map((m, l) => (this.denseMacs[l] ? m / this.denseMacs[l] : 0)),
    };
    if (this.scored.some((n) => n > 0)) {
      // An empty set is recalled in full; an empty choice is precise.
      s.oracle = {
        recall: this.hits.map((h, l) => (this.inOracle[l] ? h / this.inOracle[l] : 1)),
        precision: this.hits.map((h, l) => (this.chosen[l] ? h / this.chosen[l] : 1)),
        active_fraction: this.inOracle.map((n, l) => (this.scored[l] ? n / this.scored[l] : 0)),
      };
    }
    return s;
  }
}
