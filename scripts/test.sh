#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every gate and says which passed.
#
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh lint unit ...   only the named gates
#
# Gates: lint (yamllint, ruff, ansible-lint, changelog), sanity (ansible-test, no ignore files),
#        unit (pytest tests/unit), integration (pytest tests/integration against a real Ceph RGW),
#        build (collection tarball content), molecule (every scenario in molecule/).
# Ends with one line "gates: N passed, N failed"; exits non-zero when any gate failed.
set -uo pipefail
source "$(dirname "$0")/common.sh"

ALL_GATES=(lint sanity unit integration build molecule)
gates=("$@")
((${#gates[@]})) || gates=("${ALL_GATES[@]}")
for g in "${gates[@]}"; do
  [[ " ${ALL_GATES[*]} " == *" $g "* ]] || kd_die "unknown gate '$g' (known: ${ALL_GATES[*]})"
done

needs_hosts=0
[[ " ${gates[*]} " == *" molecule "* ]] && needs_hosts=1
if [ $needs_hosts = 1 ]; then
  "$KD_ROOT/scripts/bootstrap.sh" --hosts || kd_die "bootstrap failed: nothing was tested"
else
  "$KD_ROOT/scripts/bootstrap.sh" || kd_die "bootstrap failed: nothing was tested"
fi
kd_activate
cd "$KD_ROOT" || exit 1

LOGS="$KD_WORK/logs"
mkdir -p "$LOGS"
passed=() failed=()

# run_gate NAME CMD...: run one check, keep its log, show the log's tail when it fails.
run_gate() {
  local name=$1; shift
  kd_step "$name"
  if "$@" >"$LOGS/$name.log" 2>&1; then
    passed+=("$name"); echo "PASS $name"
  else
    failed+=("$name"); echo "FAIL $name (log: $LOGS/$name.log)"; tail -n 60 "$LOGS/$name.log"
  fi
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
  shellcheck -x scripts/*.sh tests/rig/*.sh .ci/run || rc=1
  ruff check . || rc=1
  ruff format --check . || rc=1
  ansible-lint --offline || rc=1
  antsibull-changelog lint || rc=1
  return $rc
}

integration() {
  local dir="$KD_WORK/rgw-integration" rc=0
  export KEEPDATA_RGW_DIR="$dir" KEEPDATA_RGW_PORT=${KEEPDATA_RGW_PORT:-auto} KEEPDATA_MON_PORT=${KEEPDATA_MON_PORT:-auto}
  "$KD_ROOT/tests/rig/rgw.sh" up || return 1
  KEEPDATA_RGW_ENV="$dir/rgw.env" pytest_gate tests/integration || rc=$?
  "$KD_ROOT/tests/rig/rgw.sh" down || rc=1
  return $rc
}

molecule_all() {
  local s rc=0
  for s in $(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort); do
    run_gate "molecule-$s" timeout 1800 molecule test -s "$s" || rc=1
  done
  return $rc
}

for g in "${gates[@]}"; do
  case "$g" in
    lint) run_gate lint lint_all ;;
    sanity) run_gate sanity "$KD_ROOT/scripts/sanity.sh" ;;
    unit) run_gate unit pytest_gate tests/unit ;;
    integration) run_gate integration integration ;;
    build) run_gate build "$KD_ROOT/scripts/build.sh" --check ;;
    molecule) molecule_all ;;
  esac
done

kd_step "done"
((${#failed[@]})) && echo "failed gates: ${failed[*]}"
echo "gates: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} = 0 ]
