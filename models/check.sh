#!/usr/bin/env bash
# Model-check hv's concurrency protocols with spin (Debian package `spin`): docs/model.md.
#
#   models/check.sh                  every model as written, then every broken variant
#   models/check.sh MODEL            MODEL.pml as written: must verify with no error
#   models/check.sh MODEL BUG_NAME   MODEL.pml with -DBUG_NAME: spin must report an error
#   models/check.sh MODEL WITNESS_N  MODEL.pml with -DWITNESS_N: spin must report an error (the
#                                    assertion "this never happens" is refuted: the run exists)
#   models/check.sh --list           the checks, one a line: "TESTNAME MODEL[@config] [MACRO]"
# MODEL may be MODEL@config for a model checked in several configurations (dirty_log@wp).
#
# The broken variants of a model are the lines "BUG NAME: what it breaks" in its header
# comment, its witnesses the lines "WITNESS NAME: what run must exist". A verification must also be complete (no "max search depth too small", no memory
# bound reached): an incomplete search is a failure, not a pass. Each run prints one result line
# with the states stored and the time pan took. Without spin the check fails (it never skips):
# `tools/hv setup` installs it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
models=(epoch teardown fault_zap dirty_log asym_fence)
# Per-model options: spin -D flags of the configuration the good model and its broken variants
# are checked in (several configurations of one model are separate entries "model@config").
declare -A config_flags=(
  [dirty_log@wp]="-DMODE_WP"
  [dirty_log@dbit]="-DMODE_DBIT"
  [asym_fence@lock]="-DPART_LOCK"
  [asym_fence@epoch]="-DPART_EPOCH"
  [asym_fence@epoch4]="-DPART_EPOCH -DCPUS4"
  [asym_fence@lock_kernel]="-DPART_LOCK -DKERNEL_FENCE"
  [asym_fence@epoch_kernel]="-DPART_EPOCH -DKERNEL_FENCE"
)
# Which configuration each bug of a multi-configuration model is checked in.
declare -A bug_config=()

bugs_of() {  # MODEL [KIND] -> its BUG (or WITNESS) names, NAME or NAME@config
  sed -n "s/^ \\* ${2:-BUG} \\([A-Z0-9_]*\\)\\(@[a-z0-9_]*\\)\\{0,1\\}:.*/\\1\\2/p" "$here/$1.pml"
}

configs_of() {  # MODEL -> "MODEL" or its "MODEL@config" entries
  local m=$1 k found=0
  for k in "${!config_flags[@]}"; do
    if [[ $k == "$m@"* ]]; then printf '%s\n' "$k"; found=1; fi
  done | sort
  return 0
}

list() {
  local m c b cfgs
  for m in "${models[@]}"; do
    mapfile -t cfgs < <(configs_of "$m")
    if [[ ${#cfgs[@]} -eq 0 ]]; then cfgs=("$m"); fi
    for c in "${cfgs[@]}"; do
      printf 'model.%s %s\n' "${c/@/.}" "$c"
    done
    for b in $(bugs_of "$m"); do
      local name=${b%@*} cfg=$m
      [[ $b == *@* ]] && cfg="$m@${b#*@}"
      printf 'model.%s_broken_%s_fails %s BUG_%s\n' "${cfg/@/.}" "${name,,}" "$cfg" "$name"
    done
    for b in $(bugs_of "$m" WITNESS); do
      local name=${b%@*} cfg=$m
      [[ $b == *@* ]] && cfg="$m@${b#*@}"
      printf 'model.%s_witness_%s_reached %s WITNESS_%s\n' "${cfg/@/.}" "${name,,}" "$cfg" "$name"
    done
  done
}

need_tools() {
  if ! command -v spin >/dev/null 2>&1; then
    echo "models/check.sh: FAILED: spin is not installed (Debian package 'spin'; run tools/hv setup)" >&2
    exit 1
  fi
  if ! command -v cc >/dev/null 2>&1; then
    echo "models/check.sh: FAILED: no C compiler (cc) for spin's verifier" >&2
    exit 1
  fi
}

# run ENTRY [BUG]: ENTRY is MODEL or MODEL@config. Prints one result line; returns 0 when the
# outcome is the expected one (verified for the model, an error for a broken variant).
run() {
  local entry=$1 bug=${2:-} model=${1%@*}
  local flags=${config_flags[$entry]:-}
  local src="$here/$model.pml"
  [[ -f $src ]] || { echo "models/check.sh: no model $src" >&2; return 1; }
  if [[ -n $bug ]] && ! bugs_of "$model" "${bug%%_*}" | sed 's/@.*//' | grep -qx "${bug#*_}"; then
    echo "models/check.sh: $model.pml has no ${bug%%_*} ${bug#*_} (see models/check.sh --list)" >&2
    return 1
  fi
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/hv-model.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  cp "$src" "$work/"
  local label=$entry
  [[ $bug == BUG_* ]] && label="$entry (broken: ${bug#BUG_})"
  [[ $bug == WITNESS_* ]] && label="$entry (witness: ${bug#WITNESS_})"
  local -a dflags=()
  [[ -n $flags ]] && read -r -a dflags <<<"$flags"
  [[ -n $bug ]] && dflags+=("-D$bug")
  if ! (cd "$work" && spin -a "${dflags[@]}" "$model.pml" >spin.log 2>&1); then
    cat "$work/spin.log" >&2
    echo "model $label: FAILED: spin -a rejected the model" >&2
    return 1
  fi
  # -DSAFETY: safety properties only (assertions, invalid end states); -DCOLLAPSE compresses
  # the stored states; -DMEMLIM bounds the memory (MB) so that an explosion fails instead of
  # swapping a shared machine. The vectors are small, -w22 suffices for the hash table.
  # -O2 pays off only for the big state spaces of the models as written; a broken variant or a
  # witness is refuted within a few thousand states, where compiling is most of the time.
  local opt=-O2
  [[ -n $bug ]] && opt=-O0
  if ! (cd "$work" && cc $opt -w -DSAFETY -DCOLLAPSE -DMEMLIM=1500 -o pan pan.c >cc.log 2>&1); then
    cat "$work/cc.log" >&2
    echo "model $label: FAILED: the verifier did not compile" >&2
    return 1
  fi
  # -m: the depth bound (reported if too small); -n: no listing of unreached code; pan stops at
  # the first error (-c1, the default).
  (cd "$work" && ./pan -m1000000 -w22 -n >pan.log 2>&1) || true
  local log="$work/pan.log"
  local errors states elapsed
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | tail -1)
  states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$log" | tail -1)
  elapsed=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$log" | tail -1)
  local what
  what=$(grep -m1 -E 'assertion violated|invalid end state|acceptance cycle' "$log" | sed 's/^pan:[0-9]*: *//' || true)
  if [[ -z $errors || -z $states ]]; then
    cat "$log" >&2
    echo "model $label: FAILED: pan printed no result" >&2
    return 1
  fi
  if grep -qE 'max search depth too small|reached -DMEMLIM bound|out of memory' "$log"; then
    cat "$log" >&2
    echo "model $label: FAILED: the search was not complete ($states states)" >&2
    return 1
  fi
  local stats="$states states, ${elapsed:-?} s"
  if [[ -z $bug ]]; then
    if [[ $errors == 0 ]]; then
      echo "model $label: verified, errors: 0 ($stats, exhaustive)"
      return 0
    fi
    cat "$log" >&2
    echo "model $label: FAILED: $errors error(s): $what ($stats)" >&2
    echo "  replay: cd $here && spin -a ${dflags[*]} $model.pml && cc -DSAFETY -o pan pan.c && ./pan && spin -t -p ${dflags[*]} $model.pml" >&2
    return 1
  fi
  if [[ $errors != 0 ]]; then
    if [[ $bug == WITNESS_* ]]; then
      echo "model $label: run found as required, errors: $errors: $what ($stats)"
    else
      echo "model $label: error found as required, errors: $errors: $what ($stats)"
    fi
    return 0
  fi
  if [[ $bug == WITNESS_* ]]; then
    echo "model $label: FAILED: no run reaches the witness ($stats): the model is vacuous there" >&2
  else
    echo "model $label: FAILED: the broken variant verified without error ($stats): the check does not bite" >&2
  fi
  return 1
}

if [[ ${1:-} == --list ]]; then
  list
  exit 0
fi

need_tools
if [[ $# -ge 1 ]]; then
  run "$1" "${2:-}"
  exit $?
fi

failed=0
while read -r _ entry bug; do
  run "$entry" "$bug" || failed=$((failed + 1))
done < <(list)
if [[ $failed -ne 0 ]]; then
  echo "models/check.sh: $failed check(s) FAILED" >&2
  exit 1
fi
echo "models/check.sh: all checks passed"
