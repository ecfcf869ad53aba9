#!/usr/bin/env bash
# Two builds of kv measured in alternating rounds on the same machine, so that drift in the machine's speed lands
# on both: `bash bench/side-by-side.sh BASE_DIR NEW_DIR ROUNDS [ycsb options...]`. Each DIR is a checkout with
# the benchmarks built (e.g. a `git worktree` of the older commit, `npm run bench:build` in it; before bench/ had
# its own package.json, `npx tsc -p .`). Prints, per system and workload,
# every round's ops/s and servers' CPU µs/op for both builds, then the medians and the ratio new ÷ base.
set -euo pipefail
base=$1 new=$2 rounds=$3
shift 3
out=$(mktemp -d)
for round in $(seq 1 "$rounds"); do
  for side in base new; do
    dir=$base; [ "$side" = new ] && dir=$new
    echo "round $round: $side ($dir)" >&2
    (cd "$dir" && node dist/bench/run.js ycsb --no-write --json "$@") > "$out/$side-$round.json"
  done
done
node --input-type=module - "$out" "$rounds" <<'JS'
import { readFileSync } from 'node:fs';
const [dir, rounds] = process.argv.slice(2);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const rows = new Map();
for (const side of ['base', 'new']) {
  for (let r = 1; r <= Number(rounds); r++) {
    const results = JSON.parse(readFileSync(`${dir}/${side}-${r}.json`, 'utf8'));
    for (const system of results.systems ?? results.rounds?.[0]?.systems ?? []) {
      for (const phase of system.phases) {
        const key = `${system.name} ${phase.label}`;
        if (!rows.has(key)) rows.set(key, { base: [], new: [], baseCpu: [], newCpu: [] });
        rows.get(key)[side].push(phase.opsPerSecond);
        rows.get(key)[`${side}Cpu`].push(phase.cpu?.serversMicrosPerOp ?? NaN);
      }
    }
  }
}
console.log('| system, workload | base ops/s (rounds) | new ops/s (rounds) | median base → new | new ÷ base | servers CPU µs/op, median base → new |');
console.log('|---|---|---|--:|--:|--:|');
for (const [key, v] of rows) {
  const b = median(v.base), n = median(v.new);
  const fmt = (xs) => xs.map((x) => Math.round(x).toLocaleString('en-US')).join(', ');
  console.log(`| ${key} | ${fmt(v.base)} | ${fmt(v.new)} | ${Math.round(b).toLocaleString('en-US')} → ${Math.round(n).toLocaleString('en-US')} | ${(n / b).toFixed(2)} | ${median(v.baseCpu).toFixed(0)} → ${median(v.newCpu).toFixed(0)} |`);
}
JS
