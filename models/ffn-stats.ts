// Per-layer statistics of the MLP under a neuron gate, summed over tokens: active fraction, achieved CETT
// (mask mode only: it needs the dropped neurons' values) and the fraction of FFN multiply-adds done.
export interface FfnStatsSummary {
  tokens: number;
  active_fraction: number[];
  /** null where CETT was not measured (dense or gather mode). */
  cett: (number | null)[];
  ffn_mac_fraction: number[];
}

export class FfnStats {
  private tokens: number[];
  private active: number[];
  private cett: number[];
  private cettTokens: number[];
  private macs: number[];
  private denseMacs: number[];

  constructor(readonly nLayers: number) {
    const zeros = () => new Array<number>(nLayers).fill(0);
    this.tokens = zeros();
    this.active = zeros();
    this.cett = zeros();
    this.cettTokens = zeros();
    this.macs = zeros();
    this.denseMacs = zeros();
  }

  record(l: number, activeFraction: number, macs: number, denseMacs: number, cett: number | null): void {
    this.tokens[l]++;
    this.active[l] += activeFraction;
    this.macs[l] += macs;
    this.denseMacs[l] += denseMacs;
    if (cett !== null) {
      this.cett[l] += cett;
      this.cettTokens[l]++;
    }
  }

  summary(): FfnStatsSummary {
    return {
      tokens: this.tokens[0] ?? 0,
      active_fraction: this.active.map((a, l) => (this.tokens[l] ? a / this.tokens[l] : 0)),
      cett: this.cett.map((c, l) => (this.cettTokens[l] ? c / this.cettTokens[l] : null)),
      ffn_mac_fraction: this.macs.map((m, l) => (this.denseMacs[l] ? m / this.denseMacs[l] : 0)),
    };
  }
}
