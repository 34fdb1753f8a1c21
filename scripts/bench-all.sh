#!/usr/bin/env bash
# Run every benchmark suite and keep the JSON in bench/results/ with a description of the machine.
# Peers: LLAMA2C_RUN (llama2.c `run`) and LLAMA_BENCH (llama.cpp `llama-bench`), built outside the repo.
# Usage: scripts/bench-all.sh [suite …]   (default: every suite)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
# machine.txt: the machine once, then one line per suite run (when, load, which peers), so every JSON file's run
# is described even when suites are run separately.
if [ ! -f "$out/machine.txt" ]; then
  {
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
    echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB; node $(node --version)"
  } > "$out/machine.txt"
fi
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(decode decode-quant decode-quant-1b decode-threads prefill perplexity load ffn attention gated kernels train)
for s in "${suites[@]}"; do
  echo "== $s" >&2
  peers="llama2.c ${LLAMA2C_RUN:-not given}, llama.cpp ${LLAMA_BENCH:-not given}"
  [ "$s" = decode-threads ] && peers="no peers (by design)"
  echo "$s: $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $peers" >> "$out/machine.txt"
  case "$s" in
    decode) node dist/cli.js bench decode --rounds 5 --steps 128 --json > "$out/decode-f32.json" ;;
    decode-quant) node dist/cli.js bench decode --shapes stories110M --dtypes q8_0,q4_0 --rounds 5 --steps 128 --json > "$out/decode-quant.json" ;;
    decode-quant-1b) node dist/cli.js bench decode --shapes 1B --dtypes q8_0,q4_0 --rounds 3 --steps 32 --json > "$out/decode-quant-1b.json" ;;
    decode-threads) LLAMA2C_RUN= LLAMA_BENCH= node dist/cli.js bench decode --shapes stories42M,stories110M --threads 1,2 --rounds 5 --steps 128 --json > "$out/decode-threads.json" ;;
    *) node dist/cli.js bench "$s" --json > "$out/$s.json" ;;
  esac
done
