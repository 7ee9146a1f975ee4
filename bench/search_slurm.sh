#!/usr/bin/env bash
# The search through Slurm against the local search (docs/search.md, "On a
# Slurm cluster: measured"): the same spec searched locally, then through the
# test suite's single-node Slurm with --slots N, then through Slurm again with
# the powertrain process of one array task killed (SIGKILL) in the middle of a
# segment that continues a setup. Prints the wall times, the choices, and the
# segments' records of the killed run.
#
#   bench/search_slurm.sh SPEC OUTDIR [SLOTS]
#
# Needs build/src/cli/powertrain and Slurm (scripts/setup installs slurm-wlm and munge).
set -euo pipefail
spec=$(realpath "$1")
out=$(realpath -m "$2")
slots=${3:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
pt=$root/build/src/cli/powertrain
mkdir -p "$out"
cluster=$out/cluster
"$root/tests/support/slurm/slurm-cluster" start "$cluster" >/dev/null
trap '"$root/tests/support/slurm/slurm-cluster" stop "$cluster" >/dev/null || true' EXIT
export SLURM_CONF=$cluster/etc/slurm.conf

choice() { sed -n 's/.*chosen setup *\(bs=[0-9]* lr=[0-9.e-]*\).*/\1/p' "$1" | head -n1; }
elapsed() { local t0=$1; echo $(( $(date +%s%N) / 1000000 - t0 )); }

echo "machine: $(nproc) cores; $(date -u +%FT%TZ)"
t0=$(( $(date +%s%N) / 1000000 ))
"$pt" search "$spec" --db "$out/local.db" --quiet >"$out/local.out"
echo "local search: $(elapsed $t0) ms, chosen: $(choice "$out/local.out")"

t0=$(( $(date +%s%N) / 1000000 ))
"$pt" search "$spec" --db "$out/slurm.db" --slurm --wait --slots "$slots" >"$out/slurm.out" 2>"$out/slurm.err"
echo "slurm search, $slots slots: $(elapsed $t0) ms, chosen: $(choice "$out/slurm.out")"

# Again, killing one task that continues a setup once it has trained an epoch.
t0=$(( $(date +%s%N) / 1000000 ))
"$pt" search "$spec" --db "$out/kill.db" --slurm --wait --slots "$slots" >"$out/kill.out" 2>"$out/kill.err" &
driver=$!
killed=""
killed_trial=""
killed_at=0
for _ in $(seq 1 3000); do
  sleep 0.2
  for f in "$out"/kill.db.slurm/*/results/*.partial.db; do
    [ -e "$f" ] || continue
    n=$(sqlite3 -readonly "$f" "SELECT count(*) FROM epochs e JOIN runs r ON r.id = e.run_id JOIN trials t ON t.run_id = r.id WHERE t.step > 0" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 1 ] || continue
    name=$(basename "$f")                     # trial-<id>-<job>_<task>-r<n>.partial.db
    jt=${name#trial-*-}; jt=${jt%-r*}
    job=${jt%_*}; task=${jt#*_}
    for p in $(pgrep -f "powertrain slurm-task" || true); do
      env=$(tr '\0' '\n' < /proc/$p/environ 2>/dev/null || true)
      if grep -qx "SLURM_ARRAY_JOB_ID=$job" <<<"$env" && grep -qx "SLURM_ARRAY_TASK_ID=$task" <<<"$env"; then
        kill -9 "$p" && killed="$jt (pid $p, $(basename "$f"))" && killed_trial=${name#trial-} && killed_trial=${killed_trial%%-*}
        killed_at=$(date +%s)
      fi
    done
    [ -n "$killed" ] && break
  done
  [ -n "$killed" ] && break
done
wait "$driver"
echo "slurm search with a task killed: $(elapsed $t0) ms, chosen: $(choice "$out/kill.out"); killed: ${killed:-none}"
db=$out/kill.db
# The killed task's partial file comes in once it is stale (two minutes unwritten).
if [ -n "$killed" ]; then
  sleep $(( killed_at + 125 - $(date +%s) > 0 ? killed_at + 125 - $(date +%s) : 0 ))
  "$pt" collect "$db"
fi
sqlite3 -readonly "$db" "SELECT 'segments: ' || count(*) || ', with a finished result: ' || sum(status NOT IN ('pending','running','interrupted','failed')) FROM trials"
sqlite3 -readonly "$db" "SELECT 'finished runs: ' || count(*) FROM runs WHERE status NOT IN ('interrupted','running')"
sqlite3 -readonly "$db" "SELECT 'segments with more than one finished run: ' || count(*) FROM (SELECT trial_id FROM runs WHERE status NOT IN ('interrupted','running') GROUP BY trial_id HAVING count(*) > 1)"
sqlite3 -readonly "$db" "SELECT 'result files taken in: ' || count(*) || ' (' || sum(outcome = 'duplicate') || ' duplicates)' FROM imports"
[ -n "$killed" ] && sqlite3 -readonly "$db" "SELECT 'killed segment: trial ' || t.id || ', step ' || t.step || ', status ' || t.status || ', attempts ' || t.attempts || ', epochs of its result ' || min(e.epoch) || '-' || max(e.epoch) || ', runs ' || (SELECT count(*) FROM runs WHERE trial_id = t.id) FROM trials t JOIN epochs e ON e.run_id = t.run_id WHERE t.id = $killed_trial GROUP BY t.id"
sqlite3 -readonly "$db" "SELECT 'imports of the killed segment: ' || group_concat(source || ' ' || outcome, '; ') FROM imports WHERE trial_id = ${killed_trial:-0}"
