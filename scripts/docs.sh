#!/usr/bin/env bash
# The collection's documentation site, built by antsibull-docs from the collection's own docs: modules, filters,
# the roles' meta/argument_specs.yml and the guides in docs/docsite/.
#
#   scripts/docs.sh          static HTML in $KD_WORK/docs/html (the checkout's scratch directory, see common.sh);
#                            prints the path of its index.html
#   scripts/docs.sh --lint   antsibull-docs lint-collection-docs: plugin and role docs, docs/docsite/ and the
#                            references in it
#
# The tools come from docs/requirements-docs.txt, in a venv of their own (kd_extra_venv). Nothing is fetched: the
# two labels of the Ansible docs that antsibull-docs' pages refer to are resolved from a local inventory, and Sphinx
# warnings (a broken reference, bad markup) fail the build.
set -euo pipefail
source "$(dirname "$0")/common.sh"

mode=build
case "${1:-}" in
  "") ;;
  --lint) mode=lint ;;
  *) kd_die "usage: scripts/docs.sh [--lint]" ;;
esac
(($# <= 1)) || kd_die "usage: scripts/docs.sh [--lint]"

venv=$(kd_extra_venv docs "$KD_ROOT/docs/requirements-docs.txt")
# kd_activate's collection setup, with the docs toolchain (and its ansible-core, which antsibull-docs runs) first.
kd_link_collection
export PATH="$venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$KD_COLLECTIONS" ANSIBLE_HOME="$KD_WORK/ansible-home"
export ANSIBLE_GALAXY_SERVER=http://127.0.0.1:9/ ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
collection_dir="$KD_COLLECTIONS/ansible_collections/keepdata/storage"

if [ "$mode" = lint ]; then
  kd_step "antsibull-docs lint-collection-docs (plugin and role docs, extra docs and their references)"
  antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
    --validate-collection-refs dependent --disallow-unknown-collection-refs "$collection_dir"
  echo "collection docs OK"
  exit 0
fi

site="$KD_WORK/docs"
src="$site/sphinx"
html="$site/html"
rm -rf "$src" "$html"
mkdir -p "$src"

kd_step "antsibull-docs sphinx-init into $src"
antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir "$src" \
  --project keepdata.storage --copyright "keepdata.storage contributors" \
  --title "keepdata.storage documentation" --html-short-title keepdata.storage keepdata.storage >/dev/null
if [ ! -x "$src/build.sh" ] || [ ! -f "$src/conf.py" ]; then
  kd_die "antsibull-docs sphinx-init wrote no build.sh or conf.py in $src"
fi
grep -q -- '-W' "$src/build.sh" || kd_die "$src/build.sh no longer runs sphinx-build with -W: warnings would not fail the build"

# The collection is installed from its tarball, not from a public index: link its name to the site's own index page.
version=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$KD_ROOT/galaxy.yml")
cat >"$src/antsibull-docs.cfg" <<EOF
breadcrumbs = true
indexes = true
use_html_blobs = false
add_antsibull_docs_version = true
collection_url = {
  * = "index.html"
}
collection_install = {
  * = "ansible-galaxy collection install {namespace}-{name}-$version.tar.gz"
}
EOF

# No network: antsibull-docs' pages refer to two labels of the Ansible docs (common return values, configuration
# settings). A local inventory resolves them to links; every other intersphinx source is dropped.
python3 - "$src/ansible.inv" <<'EOF'
import sys
import zlib

labels = {
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values", "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings", "Ansible Configuration Settings"),
}
body = "".join(f"{name} std:label -1 {uri} {title}\n" for name, (uri, title) in labels.items())
with open(sys.argv[1], "wb") as f:
    f.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n# The remainder of this file is compressed using zlib.\n")
    f.write(zlib.compress(body.encode()))
EOF
cat >>"$src/conf.py" <<EOF

# scripts/docs.sh: offline build, only the local inventory of the Ansible docs' labels.
intersphinx_mapping = {'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '$src/ansible.inv')}
intersphinx_timeout = 5
EOF

kd_step "antsibull-docs collection + sphinx-build -W (the generated build.sh)"
"$src/build.sh"
mv "$src/build/html" "$html"

missing=()
for page in index.html cellar_bucket_module.html backup_role.html docsite/playbooks_guide.html docsite/awx_guide.html; do
  [ -s "$html/$page" ] || missing+=("$page")
done
((${#missing[@]} == 0)) || kd_die "the site in $html lacks: ${missing[*]}"
kd_step "documentation site built"
echo "$html/index.html"
