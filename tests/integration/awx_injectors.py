# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What AWX does with a custom credential type, redone for the tests of extensions/awx/credential_types.

``validate(ctype)`` applies the rules AWX checks when a credential type is created (POST /api/v2/credential_types/)
and raises ValueError on the first one broken. ``render(ctype, inputs, private_data_dir)`` injects a credential the
way a job would: the ``file`` templates are written to 0600 files in ``<private_data_dir>/env``, then ``env`` and
``extra_vars`` are rendered with the inputs and ``tower.filename``. Rendering uses Jinja's immutable sandbox with the
default (lenient) undefined, as AWX does; the file paths are the real ones (AWX gives container paths, /runner/env/...).
"""

import json
import os
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOP_KEYS = {"name", "description", "kind", "inputs", "injectors"}
KINDS = {"cloud", "net"}  # the only kinds a custom credential type may have
FIELD_KEYS = {"id", "label", "type", "format", "choices", "help_text", "multiline", "secret", "default"}
FIELD_TYPES = {"string": str, "boolean": bool}
FIELD_OPTION_TYPES = (("secret", bool, "true or false"), ("multiline", bool, "true or false"), ("help_text", str, "a string"), ("format", str, "a string"))
INJECTOR_KEYS = {"env", "extra_vars", "file"}
FILE_KEY = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
NAME = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
# Variables a job sets itself: AWX refuses them in a credential type's env injector (and every ANSIBLE_* name).
RESERVED_ENV = frozenset(
    {
        "PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "JOB_ID",
        "INVENTORY_ID",
        "INVENTORY_SOURCE_ID",
        "INVENTORY_UPDATE_ID",
        "AD_HOC_COMMAND_ID",
        "REST_API_URL",
        "REST_API_TOKEN",
        "MAX_EVENT_RES",
        "CALLBACK_QUEUE",
        "CALLBACK_CONNECTION",
        "CACHE",
        "JOB_CALLBACK_DEBUG",
        "INVENTORY_HOSTVARS",
        "AWX_HOST",
        "PROJECT_REVISION",
        "SUPERVISOR_CONFIG_PATH",
    }
)


def load(path):
    """The credential type stored as JSON in ``path`` (the body of the POST that registers it)."""
    return json.loads(Path(path).read_text())


def _fields(ctype):
    return ctype.get("inputs", {}).get("fields", [])


def _check_field(field, seen):
    if not isinstance(field, dict):
        raise ValueError("each input field must be a mapping, not %r" % (field,))
    unknown = set(field) - FIELD_KEYS
    if unknown:
        raise ValueError("input field %r: unknown keys %s" % (field.get("id"), ", ".join(sorted(unknown))))
    field_id = field.get("id")
    if not isinstance(field_id, str) or not NAME.match(field_id):
        raise ValueError("input field id %r is not a valid name" % (field_id,))
    if field_id in seen:
        raise ValueError("input field id %r is defined twice" % field_id)
    if not isinstance(field.get("label"), str) or not field["label"]:
        raise ValueError("input field %r needs a label" % field_id)
    kind = field.get("type", "string")
    if kind not in FIELD_TYPES:
        raise ValueError("input field %r: type must be string or boolean, not %r" % (field_id, kind))
    for key, expected, what in FIELD_OPTION_TYPES:
        if key in field and not isinstance(field[key], expected):
            raise ValueError("input field %r: %s must be %s" % (field_id, key, what))
    if "choices" in field:
        if kind != "string" or not isinstance(field["choices"], list) or not all(isinstance(c, str) for c in field["choices"]):
            raise ValueError("input field %r: choices must be a list of strings on a string field" % field_id)
    if "default" in field and not isinstance(field["default"], FIELD_TYPES[kind]):
        raise ValueError("input field %r: default must be a %s" % (field_id, kind))
    seen.add(field_id)


def _check_templates(ctype, files, env, extra_vars):
    """Render every template strictly with placeholder values: any name but an input id or tower.filename fails."""
    jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    placeholders = {field["id"]: (True if field.get("type") == "boolean" else "x") for field in _fields(ctype)}
    tower = SimpleNamespace()
    if "template" in files:
        tower.filename = "/runner/env/tmpexample"
    elif files:
        tower.filename = SimpleNamespace(**{key.split(".", 1)[1]: "/runner/env/tmpexample" for key in files})
    # The files are written before tower.filename exists: their own templates see the inputs only.
    sources = [("file " + key, value, {}) for key, value in files.items()]
    sources += [("env " + key, value, {"tower": tower}) for key, value in env.items()]
    sources += [("extra_vars " + key, value, {"tower": tower}) for key, value in extra_vars.items()]
    for where, source, extra in sources:
        if not isinstance(source, str):
            raise ValueError("injector %s: the value must be a string" % where)
        try:
            jinja.from_string(source).render(dict(placeholders, **extra))
        except TemplateError as exc:  # undefined names, syntax errors, sandbox violations
            raise ValueError("injector %s: %s" % (where, exc)) from exc


def _check_inputs(inputs):
    """The input field ids, once ``inputs`` is checked."""
    if not isinstance(inputs, dict) or set(inputs) - {"fields", "required"}:
        raise ValueError("inputs holds only fields and required")
    if not isinstance(inputs.get("fields", []), list):
        raise ValueError("inputs.fields must be a list")
    ids = set()
    for field in inputs.get("fields", []):
        _check_field(field, ids)
    required = inputs.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError("inputs.required must be a list of field ids")
    if set(required) - ids:
        raise ValueError("required names undefined inputs: %s" % ", ".join(sorted(set(required) - ids)))
    return ids


def _check_injectors(injectors):
    """The file, env and extra_vars injectors, once their keys are checked."""
    if not isinstance(injectors, dict) or set(injectors) - INJECTOR_KEYS:
        raise ValueError("injectors holds only env, extra_vars and file")
    files, env, extra_vars = (injectors.get(key, {}) for key in ("file", "env", "extra_vars"))
    if not all(isinstance(section, dict) for section in (files, env, extra_vars)):
        raise ValueError("injectors.file, .env and .extra_vars must be mappings")
    for key in files:
        if not FILE_KEY.match(key):
            raise ValueError("file injector %r: keys are template or template.<name>" % key)
    if "template" in files and len(files) > 1:
        raise ValueError("file injector: template cannot be mixed with template.<name>")
    for name, value in env.items():
        if not NAME.match(name):
            raise ValueError("env injector %r is not a valid variable name" % name)
        if name.upper().startswith("ANSIBLE_") or name in RESERVED_ENV:
            raise ValueError("env injector %r is reserved for the job itself" % name)
        if isinstance(value, str) and not value.isascii():
            raise ValueError("env injector %r: the value must be ASCII" % name)
    for name in extra_vars:
        if not NAME.match(name):
            raise ValueError("extra_vars injector %r is not a valid variable name" % name)
    return files, env, extra_vars


def validate(ctype):
    """Raise ValueError unless AWX would accept ``ctype`` as a new credential type."""
    if not isinstance(ctype, dict):
        raise ValueError("a credential type is a mapping")
    unknown = set(ctype) - TOP_KEYS
    if unknown:
        raise ValueError("unknown keys %s" % ", ".join(sorted(unknown)))
    if not isinstance(ctype.get("name"), str) or not ctype["name"]:
        raise ValueError("the credential type needs a name")
    if ctype.get("kind") not in KINDS:
        raise ValueError("kind must be cloud or net, not %r" % (ctype.get("kind"),))
    _check_inputs(ctype.get("inputs", {}))
    files, env, extra_vars = _check_injectors(ctype.get("injectors", {}))
    _check_templates(ctype, files, env, extra_vars)


def render(ctype, inputs, private_data_dir):
    """Inject a credential of type ``ctype`` with ``inputs`` into a job's private data dir.

    Returns ``(env, extra_vars, paths)``: the variables for the job's environment, the extra vars, and the files
    written (in ``<private_data_dir>/env``, mode 0600, in the order of the ``file`` injector).
    """
    validate(ctype)
    fields = {field["id"]: field for field in _fields(ctype)}
    unknown = set(inputs) - set(fields)
    if unknown:
        raise ValueError("undefined inputs: %s" % ", ".join(sorted(unknown)))
    namespace = {}
    for field_id, field in fields.items():
        value = inputs.get(field_id, field.get("default"))
        if value is not None and value != "":
            namespace[field_id] = value
    missing = [r for r in ctype.get("inputs", {}).get("required", []) if r not in namespace]
    if missing:
        raise ValueError("missing required inputs: %s" % ", ".join(missing))

    jinja = ImmutableSandboxedEnvironment()  # lenient: an input without a value renders as ""
    injectors = ctype.get("injectors", {})
    env_dir = Path(private_data_dir) / "env"
    env_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths, filenames = [], {}
    for key, template in injectors.get("file", {}).items():
        content = jinja.from_string(template).render(namespace)  # Jinja drops the template's last newline
        handle, name = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as out:
            out.write(content)
        os.chmod(name, 0o600)
        paths.append(name)
        filenames[key] = name
    tower = SimpleNamespace()
    if "template" in filenames:
        tower.filename = filenames["template"]
    elif filenames:
        tower.filename = SimpleNamespace(**{key.split(".", 1)[1]: name for key, name in filenames.items()})
    context = dict(namespace, tower=tower)
    env = {name: jinja.from_string(value).render(context) for name, value in injectors.get("env", {}).items()}
    extra_vars = {name: jinja.from_string(value).render(context) for name, value in injectors.get("extra_vars", {}).items()}
    return env, extra_vars, paths
