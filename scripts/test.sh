#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every gate and says which passed.
#
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh lint unit ...   only the named gates
#
# Gates: lint (yamllint, ruff, ansible-lint, changelog), sanity (ansible-test, no ignore files; sanity-oldest: the
#        same on the oldest ansible-core claimed), unit (pytest tests/unit; unit-oldest: again on that oldest
#        ansible-core, tests/requirements-oldest.txt), integration (pytest tests/integration against a real Ceph RGW),
#        build (collection tarball content, and Galaxy's importer takes it), docs (the antsibull-docs HTML site,
#        Sphinx warnings fail it), newest (sanity and unit again on the newest ansible-core, which needs Python 3.12:
#        in a Debian 13 container, scripts/newest.sh), molecule (every scenario in molecule/). lint also lints the
#        collection docs (scripts/docs.sh --lint).
# Ends with one line "gates: N passed, N failed"; exits non-zero when any gate failed. A failed bootstrap
# (packages, toolchain, test images) counts as the failed gate "bootstrap" and no other gate runs.
#
# Every gate runs in a lane, KD_LANES at a time (default 2; KD_LANES=1 runs them one by one), longest first.
# integration and the Molecule scenarios mostly wait (on the RGW, on systemd, apt and timers inside their test
# hosts); lint, sanity, unit, build and docs use the CPU: at most one of those runs at a time (sanity and
# sanity-oldest also share ansible-test's venv), in order, beside the integration gate. newest runs late, where it
# fills the time a lane would otherwise wait for the other. Each keeps its own log; PASS or FAIL is printed as each
# one ends.
set -uo pipefail
# A platform the caller chose runs every Molecule scenario; without one, each scenario runs on its own (below).
chosen_platform=${KEEPDATA_PLATFORM:-}
source "$(dirname "$0")/common.sh"

ALL_GATES=(lint sanity unit integration build docs newest molecule)
gates=("$@")
((${#gates[@]})) || gates=("${ALL_GATES[@]}")
for g in "${gates[@]}"; do
  [[ " ${ALL_GATES[*]} " == *" $g "* ]] || kd_die "unknown gate '$g' (known: ${ALL_GATES[*]})"
done

LOGS="$KD_WORK/logs"
mkdir -p "$LOGS"
passed=() failed=() branches=() interrupted=""

summary() {
  local name
  kd_step "done"
  # Last, where CI's excerpt of this output (its head and tail) shows it: the task that failed each gate.
  for name in "${failed[@]}"; do where_it_failed "$LOGS/$name.log" "$name"; done
  ((${#failed[@]})) && echo "failed gates: ${failed[*]}"
  for name in "${branches[@]}"; do echo "branch $name"; done
  echo "gates: ${#passed[@]} passed, ${#failed[@]} failed"
}

# Ctrl-C / SIGTERM: the running gate is told too (same process group) and cleans up after itself (the
# integration gate stops its RGW); then no further gate starts.
trap 'interrupted=INT' INT
trap 'interrupted=TERM' TERM

bootstrap_args=()
[[ " ${gates[*]} " == *" molecule "* ]] && bootstrap_args=(--hosts)
kd_step "bootstrap${bootstrap_args[*]:+ ${bootstrap_args[*]}}"
if ! "$KD_ROOT/scripts/bootstrap.sh" "${bootstrap_args[@]}" 2>&1 | tee "$LOGS/bootstrap.log"; then
  failed+=(bootstrap)
  echo "FAIL bootstrap (log: $LOGS/bootstrap.log): nothing was tested; gates not run: ${gates[*]}"
  summary
  exit 1
fi
kd_activate
cd "$KD_ROOT" || exit 1
# A caller's PYTEST_ADDOPTS (say --collect-only) would turn a gate into a run that tests nothing.
unset PYTEST_ADDOPTS

# gate_result NAME RC: count one gate; when it failed, show its first failures (a Molecule log's tail is its
# cleanup, which hides the task that failed; CI keeps only this script's output), then its tail.
gate_result() {
  gate_branches "$1"
  if [ "$2" = 0 ]; then
    passed+=("$1"); echo "PASS $1"
  else
    failed+=("$1"); echo "FAIL $1 (log: $LOGS/$1.log)"
    first_failures "$LOGS/$1.log"
    echo "--- last lines of $1.log"
    tail -n 60 "$LOGS/$1.log"
  fi
}

# gate_branches NAME: the branches a gate took where this machine decides which runs (a check printed
# "GATE BRANCH what: which one"), kept for the summary: a gate never passes quietly on the lesser branch.
gate_branches() {
  local line
  while IFS= read -r line; do
    branches+=("$1, $line")
  done < <(grep -o 'GATE BRANCH [^"]*' "$LOGS/$1.log" 2>/dev/null | sed 's/^GATE BRANCH //' | sort -u)
}

# first_failures LOG: the first three failed tasks or tests in LOG, each with the lines just before and after
# (Ansible's "fatal:"/"failed:", pytest's "FAILED"/"Error"), at most 120 lines in all.
first_failures() {
  grep -n -m 3 -B 4 -A 24 -E '^(fatal|failed): |^FAILED |^E   |^ERROR: |\*\*\* FAIL' "$1" | head -n 120 \
    | sed 's/^/| /' || true
  echo "--- (first failures of $(basename "$1") above, if any)"
}

# where_it_failed LOG NAME: the task that ended a failed play in LOG (its TASK line and its failure, cut to 1500
# characters), and a Molecule idempotence verdict. A verify's expected failures (rescued or ignored) come before it:
# it is the last failure, not ignored, before a PLAY RECAP that counts one.
where_it_failed() {
  awk -v gate="$2" '
    function show(text) { print "--- " gate " failed at:"; print text; found = 1 }
    /^TASK \[/ { task = $0 }
    /^(fatal|failed): / { before = last; last = task "\n" substr($0, 1, 1500); at = NR }
    /^\.\.\.ignoring/ && NR == at + 1 { last = before }
    /^PLAY RECAP/ { recap = 1 }
    recap && / failed=[1-9]/ && last != "" { show(last); exit }
    /^[A-Z]+ +Idempotence test failed/ { idem = NR; text = $0; next }
    idem && NR <= idem + 10 { text = text "\n" $0; if (NR == idem + 10) { show(text); exit } }
    END { if (idem && !found) show(text) }
  ' "$1" || true
}

# Gates that run side by side: queue_gate NAME CMD... adds one (the command as one string of quoted words),
# run_lanes runs the queue, KD_LANES at a time, longest first. The order is from CI's measured times (stop 41:
# integration 1787 s; the CPU gates 516 s together, one after the other, the second lane beside it otherwise idle;
# molecule-backup 1481, mounts 613, s3fs 526, newest 244, smoke 123): each next gate goes to the lane that frees
# first, so the two lanes end within a minute or two of each other (estimated 2650 s instead of 2950 s).
LONGEST_FIRST=(integration lint sanity sanity-oldest unit unit-oldest build docs molecule-backup molecule-mounts molecule-s3fs newest molecule-smoke)
# The gates that keep a CPU busy: one at a time, whatever the number of lanes.
CPU_GATES=(lint sanity sanity-oldest unit unit-oldest build docs)
queued=()
declare -A queued_cmd=() running=()
queue_gate() {
  local name=$1; shift
  queued+=("$name")
  queued_cmd[$name]=$(printf '%q ' "$@")
}

# next_gate NAME...: the first of the gates left that may start now (not a CPU gate while one runs).
next_gate() {
  local name cpu_busy=0
  for name in "${running[@]}"; do is_cpu_gate "$name" && cpu_busy=1; done
  for name in "$@"; do
    if ! is_cpu_gate "$name" || [ $cpu_busy = 0 ]; then echo "$name"; return 0; fi
  done
  return 1
}
is_cpu_gate() { [[ " ${CPU_GATES[*]} " == *" $1 "* ]]; }

run_lanes() {
  local lanes=${KD_LANES:-2} order=() rest=() name gate pid rc
  [[ $lanes =~ ^[1-9][0-9]*$ ]] || kd_die "KD_LANES must be a whole number of lanes, 1 or more (got '$lanes')"
  for name in "${LONGEST_FIRST[@]}"; do [[ " ${queued[*]} " == *" $name "* ]] && order+=("$name"); done
  for name in "${queued[@]}"; do [[ " ${order[*]} " == *" $name "* ]] || order+=("$name"); done
  while ((${#order[@]} || ${#running[@]})); do
    while [ -z "$interrupted" ] && ((${#order[@]} && ${#running[@]} < lanes)); do
      name=$(next_gate "${order[@]}") || break
      rest=()
      for gate in "${order[@]}"; do [ "$gate" = "$name" ] || rest+=("$gate"); done
      order=("${rest[@]}")
      kd_step "$name (started, ${#running[@]} other gate(s) running)"
      # Job control on while it starts: the gate gets a process group of its own, so an interruption can
      # stop the whole gate (its molecule, its RGW) by its group, and a Ctrl-C reaches only this script.
      set -m
      eval "${queued_cmd[$name]}" >"$LOGS/$name.log" 2>&1 &
      running[$!]=$name
      set +m
    done
    if [ -n "$interrupted" ]; then
      order=()
      # Stop what still runs, each gate by its process group (it cleans up after itself: the RGW is stopped).
      for pid in "${!running[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    fi
    ((${#running[@]})) || break
    rc=0 pid=
    wait -n -p pid "${!running[@]}" || rc=$?
    [ -n "${pid:-}" ] || continue  # a signal arrived: the loop stops the gates that run
    name=${running[$pid]}; unset "running[$pid]"
    kd_step "$name done"
    gate_result "$name" $rc
  done
}

# pytest exits 5 when it collected nothing: for a suite that must have tests, that is a failure.
pytest_gate() {
  local rc=0
  pytest "$@" || rc=$?
  if [ $rc = 5 ]; then echo "pytest collected no test in $*: a suite without tests is a failure"; return 1; fi
  return $rc
}

lint_all() {
  local rc=0
  yamllint --strict . || rc=1
  shellcheck -x scripts/*.sh tests/rig/*.sh tests/benchmarks/*.sh .ci/run || rc=1
  ruff check . || rc=1
  ruff format --check . || rc=1
  ansible-lint --offline || rc=1
  antsibull-changelog lint || rc=1
  "$KD_ROOT/scripts/docs.sh" --lint || rc=1
  return $rc
}

# The unit tests on the oldest ansible-core the collection claims (meta/runtime.yml), its toolchain first on PATH
# (pytest, ansible-doc). Not the execution environment test: ansible-builder is in the main toolchain only.
unit_oldest() (
  venv=$(kd_extra_venv oldest "$KD_ROOT/tests/requirements-oldest.txt") || exit 1
  export PATH="$venv/bin:$PATH"
  ansible --version | head -n 1
  pytest_gate tests/unit --ignore=tests/unit/test_execution_environment.py
)

# A subshell: the KEEPDATA_RGW_* settings and the traps stay inside this gate.
integration() (
  dir="$KD_WORK/rgw-integration"
  export KEEPDATA_RGW_DIR="$dir" KEEPDATA_RGW_PORT=${KEEPDATA_RGW_PORT:-auto} KEEPDATA_MON_PORT=${KEEPDATA_MON_PORT:-auto}
  rgw() { "$KD_ROOT/tests/rig/rgw.sh" "$@"; }
  # An instance of this gate left by a run that was killed: stop it, or "up" refuses to start.
  rgw down || exit 1
  # Whatever happens from here (failure, Ctrl-C, SIGTERM), the RGW is stopped when the gate ends.
  trap 'rc=$?; rgw down || rc=1; exit $rc' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rgw up || exit 1
  # The slowest tests named at the end: where this gate's time goes.
  KEEPDATA_RGW_ENV="$dir/rgw.env" pytest_gate --durations=25 tests/integration
)

# Every scenario the suite must run: one that goes missing fails its gate instead of silently running fewer.
MOLECULE_SCENARIOS=(backup mounts s3fs smoke)
# The Debian release each scenario's hosts run, so that every role runs end to end on both within CI's time: backup
# (with backup_monitoring, and mounts for its SSHFS target) and s3fs on Debian 13; mounts and smoke on Debian 12, where
# the integration gate's test_ansible_core_range.py also runs each of the four roles. KEEPDATA_PLATFORM set by the caller
# puts every scenario on that one.
declare -A SCENARIO_PLATFORM=([backup]=trixie [s3fs]=trixie [mounts]=bookworm [smoke]=bookworm)
scenario_platform() { echo "${chosen_platform:-${SCENARIO_PLATFORM[$1]:-bookworm}}"; }

# molecule_scenario NAME: molecule test, then proof from molecule's own summary that converge, idempotence
# and a verify playbook that exists really ran (molecule reports a missing verify.yml as "Missing playbook").
molecule_scenario() {
  local s=$1 out rc=0 step
  [ -f "molecule/$s/molecule.yml" ] || { echo "scenario $s: molecule/$s/molecule.yml is missing"; return 1; }
  [ -f "molecule/$s/verify.yml" ] || { echo "scenario $s: molecule/$s/verify.yml is missing: a scenario without a verify proves nothing"; return 1; }
  # This scenario's platform, for hosts.sh and molecule alike (exported to them, local to this function).
  local -x KEEPDATA_PLATFORM KEEPDATA_SYSTEMD_IMAGE
  KEEPDATA_PLATFORM=$(scenario_platform "$s")
  KEEPDATA_SYSTEMD_IMAGE=keepdata/debian-systemd:$KEEPDATA_PLATFORM
  echo "scenario $s on $KEEPDATA_SYSTEMD_IMAGE"
  # The bootstrap built the default platform's images; another one's are built here, once (hosts.sh holds a lock
  # per platform, so two lanes never build the same image at once).
  "$KD_ROOT/tests/rig/hosts.sh" images || return 1
  out=$(mktemp)
  timeout 1800 molecule test -s "$s" 2>&1 | tee "$out" || rc=1
  for step in converge idempotence verify; do
    grep -qE "^$s > $step: Executed: Successful" "$out" || { echo "scenario $s: step '$step' did not run successfully"; rc=1; }
  done
  rm -f "$out"
  return $rc
}

queue_molecule() {
  local s
  for s in $({ printf '%s\n' "${MOLECULE_SCENARIOS[@]}"; find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename; } | sort -u); do
    queue_gate "molecule-$s" molecule_scenario "$s"
  done
}

for g in "${gates[@]}"; do
  [ -z "$interrupted" ] || break
  case "$g" in
    lint) queue_gate lint lint_all ;;
    sanity) queue_gate sanity "$KD_ROOT/scripts/sanity.sh"; queue_gate sanity-oldest "$KD_ROOT/scripts/sanity.sh" --oldest ;;
    unit) queue_gate unit pytest_gate tests/unit; queue_gate unit-oldest unit_oldest ;;
    integration) queue_gate integration integration ;;
    build) queue_gate build "$KD_ROOT/scripts/build.sh" --check ;;
    docs) queue_gate docs "$KD_ROOT/scripts/docs.sh" ;;
    newest) queue_gate newest "$KD_ROOT/scripts/newest.sh" ;;
    molecule) queue_molecule ;;
  esac
done
[ -n "$interrupted" ] || run_lanes

if [ -n "$interrupted" ]; then
  ran=" ${passed[*]} ${failed[*]} "
  not_run=()
  for g in "${gates[@]}"; do [[ $ran == *" $g "* || $ran == *" $g-"* ]] || not_run+=("$g"); done
  echo "interrupted (SIG$interrupted)${not_run[*]:+; gates not run: ${not_run[*]}}"
  summary
  exit 130
fi
summary
[ ${#failed[@]} = 0 ]
