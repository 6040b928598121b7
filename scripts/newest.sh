#!/usr/bin/env bash
# The sanity and unit tests on the newest ansible-core (tests/requirements-newest.txt), which wants Python 3.12 or
# later: Debian 12 has 3.11, so they run in keepdata/controller:trixie (Debian 13's Python 3.13, built by
# tests/rig/hosts.sh controller), on a copy of the collection as git would ship it.
#
#   scripts/newest.sh              both
#   scripts/newest.sh sanity|unit  one of them
#
# The same rules as scripts/sanity.sh (no ignore files, each sanity test in its own venv) and the unit gate (every
# unit test but the execution environment's: ansible-builder is in the main toolchain only). promtool comes from
# the main toolchain's cache (scripts/bootstrap.sh), ansible-test's offline pip bootstrap from tests/rig.
set -euo pipefail
source "$(dirname "$0")/common.sh"
kd_activate

parts=("$@")
((${#parts[@]})) || parts=(sanity unit)
for part in "${parts[@]}"; do
  case "$part" in sanity | unit) ;; *) kd_die "unknown part '$part' (known: sanity unit)" ;; esac
done
[ -z "$(ls "$KD_ROOT"/tests/sanity/ignore-*.txt 2>/dev/null)" ] || kd_die "tests/sanity/ignore-*.txt exist: fix the code instead"
promtool="$KD_CACHE/prometheus-tools/usr/bin/promtool"
[ -x "$promtool" ] || kd_die "no promtool in $KD_CACHE: run scripts/bootstrap.sh"

KEEPDATA_PLATFORM=trixie "$KD_ROOT/tests/rig/hosts.sh" controller
image=keepdata/controller:trixie

copy="$KD_WORK/ansible-test-newest"
kd_copy_collection "$copy/ansible_collections/keepdata/storage"
inside=/src/ansible_collections/keepdata/storage

# One container for both parts; removed however this script ends (an interrupted gate included).
name="keepdata-newest-$(echo "$KD_ROOT" | sha256sum | cut -c1-8)"
docker rm -f "$name" >/dev/null 2>&1 || true
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
docker run -d --name "$name" --label keepdata.test=newest --network host \
  -v "$copy:/src" -v "$promtool:/usr/local/bin/promtool:ro" \
  -v "$KD_ROOT/tests/rig/ansible_test_get_pip.py:/opt/keepdata/get_pip.py:ro" \
  -e ANSIBLE_GALAXY_SERVER=http://127.0.0.1:9/ -e ANSIBLE_FORCE_COLOR=0 -e PY_COLORS=0 -e NO_COLOR=1 \
  "$image" sleep infinity >/dev/null
# in_container [docker exec options] CONTAINER COMMAND...: run in the background and waited for, so that a TERM
# or INT ends this script at once (bash runs a trap only once its foreground command is done); the EXIT trap's
# docker rm then stops what still runs in the container.
in_container() {
  docker exec -w "$inside" "$@" &
  wait $!
}

python=$(in_container "$name" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
kd_step "$(in_container "$name" ansible --version | head -n 1), Python $python (Debian 13)"

failed=()
for part in "${parts[@]}"; do
  case "$part" in
    sanity)
      # ansible-test --venv bootstraps pip with a script it cannot download here (see scripts/bootstrap.sh).
      get_pip=$(in_container "$name" sh -c 'cat /opt/keepdata/venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py' \
        | kd_get_pip_name) || kd_die "cannot tell which pip version the image's ansible-test bootstraps"
      in_container "$name" install -D -m 0644 /opt/keepdata/get_pip.py "/root/.ansible/test/cache/$get_pip"
      kd_step "ansible-test sanity (Python $python)"
      in_container "$name" ansible-test sanity --venv --python "$python" --color no || failed+=(sanity)
      ;;
    unit)
      kd_step "pytest tests/unit"
      rc=0
      in_container -e PYTHONPATH=/src -e ANSIBLE_COLLECTIONS_PATH=/src "$name" \
        pytest -p no:cacheprovider tests/unit --ignore=tests/unit/test_execution_environment.py || rc=$?
      # pytest exits 5 when it collected nothing: a unit suite without tests is a failure.
      [ $rc = 0 ] || failed+=(unit)
      ;;
  esac
done
((${#failed[@]} == 0)) || kd_die "failed on ansible-core $(grep -m1 '^ansible-core==' "$KD_ROOT/tests/requirements-newest.txt" | cut -d= -f3): ${failed[*]}"
kd_step "newest ansible-core: ${parts[*]} passed"
