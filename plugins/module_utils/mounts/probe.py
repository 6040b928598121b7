# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read-only look at a managed host before the roles change it (module keepdata.storage.mount_probe).

Each check is a small function; ``probe(request)`` runs those the request asks for and returns the facts
and the problems, each phrased for the user. Nothing here writes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import os
import re
import socket
import subprocess
import time

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import MOUNTINFO, read_mounts, resolve_id
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.health import AUTOFS_SOURCE, HEALTHY, HUNG, hung_message, is_fuse, look, read_mount_types
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.shared_links import link_problem, link_status, links_todo


def missing_packages(packages, run=subprocess.run):
    """The Debian packages of ``packages`` that are not installed (so an idempotent run never calls apt)."""
    if not packages:
        return []
    # subprocess, not run_command: the probe's runner is given by the caller (unit tests give a fake).
    # pylint: disable-next=ansible-bad-function
    proc = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n"] + list(packages), capture_output=True, text=True, check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines() if len(line.split()) > 1 and line.split()[1] == "ii"}
    return [p for p in packages if p not in installed]


# Lines of "systemd-analyze calendar --iterations=N": "Next elapse:" / "Iter. #K:" (systemd 252, Debian 12) or
# "Iteration #K:" (systemd 257, Debian 13) hold the local time, and a "(in UTC):" line follows each of them unless
# the host's time zone is UTC.
_ELAPSE = re.compile(r"^\s*(Next elapse|Iter\. #\d+|Iteration #\d+|\(in UTC\)):\s+\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\b", re.MULTILINE)


def calendar_gap(analyze_output):
    """The longest time in seconds between two consecutive elapses that ``systemd-analyze calendar --iterations=N``
    printed (in UTC when it printed UTC lines), 0 when it printed fewer than two."""
    found = _ELAPSE.findall(analyze_output or "")
    utc = [when for label, when in found if label == "(in UTC)"]
    times = [datetime.datetime.strptime(when, "%Y-%m-%d %H:%M:%S") for when in (utc or [when for _label, when in found])]
    gaps = [int((later - earlier).total_seconds()) for earlier, later in zip(times, times[1:])]
    return max(gaps) if gaps else 0


def mount_point_state(path, mounts, timeout, types=None):
    """What is at a mount point. A mounted FUSE one is asked first, in a child process with a time limit
    (mount_health): a dead or hung mount must neither be taken for a missing directory nor hang the play."""
    state = {"exists": True, "is_dir": True, "mounted": path in mounts, "source": mounts.get(path, ""), "entries": [], "health": "", "health_detail": ""}
    fstype = (types or {}).get(path, "fuse")
    if state["mounted"] and state["source"] != AUTOFS_SOURCE and is_fuse(fstype):
        state["health"], state["health_detail"] = look(path, timeout)
        if state["health"] != HEALTHY:
            return state
    state.update(exists=os.path.lexists(path), is_dir=os.path.isdir(path))
    if state["is_dir"] and not state["mounted"]:
        state["entries"] = sorted(os.listdir(path))
    return state


def split_address(address):
    host, _sep, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def port_error(address, timeout):
    """ "" when a TCP connection to host:port succeeds, else why not."""
    try:
        socket.create_connection(split_address(address), timeout=timeout).close()
    except OSError as exc:
        return str(exc) or exc.__class__.__name__
    return ""


def fingerprint(key_base64):
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def scan_keys(address, timeout, run=subprocess.run):
    """([{"key": "type base64", "fingerprint": "SHA256:..."}], error) offered by the SSH server at host:port."""
    host, port = split_address(address)
    try:
        # subprocess, not run_command: the probe's runner is given by the caller (unit tests give a fake).
        # pylint: disable-next=ansible-bad-function
        proc = run(["ssh-keyscan", "-T", str(timeout), "-p", str(port), host], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return [], "ssh-keyscan is not installed on this host (package openssh-client)"
    keys = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            keys.append({"key": "%s %s" % (fields[1], fields[2]), "fingerprint": fingerprint(fields[2])})
    if keys:
        return keys, ""
    return [], (proc.stderr.strip().splitlines() or ["ssh-keyscan got no key"])[-1]


def pin_host_key(entry, offered, scan_error):
    """(known_hosts line, problem): the key given by value (offered by the server when scanned) or the scanned key matching the fingerprint."""
    if entry["value"]:
        if not entry["scan"] or entry["value"] in [k["key"] for k in offered]:
            return "%s %s" % (entry["name"], entry["value"]), None
        expected = "the given host_key"
    else:
        for key in offered:
            if key["fingerprint"] == entry["fingerprint"]:
                return "%s %s" % (entry["name"], key["key"]), None
        expected = entry["fingerprint"]
    offers = ", ".join(k["fingerprint"] for k in offered) or scan_error or "no key"
    return None, "%s for %s expected %s, server offers %s" % (entry["address"], entry["path"], expected, offers)


def _more(names, limit=5):
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


def check_ids(request, facts):
    unknown = []
    for entry in request.get("ids") or []:
        facts["ids"][entry["option"]] = resolve_id(entry["name"], entry["kind"])
        if facts["ids"][entry["option"]] is None:
            unknown.append("%s=%s" % (entry["option"], entry["name"]))
    return ["unknown user or group on this host: " + ", ".join(unknown)] if unknown else []


def check_mount_points(request, facts, mounts):
    """A mount point that is a file, or a non-empty directory not mounted yet, would hide data."""
    hiding, hung = [], []
    for point in request.get("mount_points") or []:
        state = facts["mount_points"][point["path"]] = mount_point_state(point["path"], mounts, request.get("timeout") or 5, request.get("_types"))
        # A dead mount (its FUSE daemon gone) is healed by module fstab_mount; a hung one stops the play here.
        if state["health"] == HUNG:
            hung.append(hung_message(point["path"], state["health_detail"]))
        if state["exists"] and not state["is_dir"]:
            hiding.append((point["path"], "not a directory"))
        elif state["entries"] and not point.get("allow_non_empty"):
            hiding.append((point["path"], "contains " + _more(state["entries"])))
    problems = hung
    if not hiding:
        return problems
    hint = request.get("non_empty_hint") if any(why != "not a directory" for _path, why in hiding) else ""
    return problems + [
        "refusing to mount over non-empty or non-directory paths, data there would be hidden: %s (move the content away%s)"
        % ("; ".join("%s (%s)" % item for item in hiding), ", or " + hint if hint else "")
    ]


def check_ports(request, facts):
    unreachable = []
    for address in request.get("ports") or []:
        facts["ports"][address] = port_error(address, request["timeout"])
        if facts["ports"][address]:
            unreachable.append("%s (%s)" % (address, facts["ports"][address]))
    if not unreachable:
        return []
    hint = request.get("port_hint")
    return ["%s not reachable: %s%s" % (request.get("port_label") or "server", "; ".join(unreachable), " (%s)" % hint if hint else "")]


def check_host_keys(request, facts, attempts=3, pause=1.0):
    """Scan each SSH server once; pin the key given by value or the one matching the fingerprint.

    sshd drops connections beyond its MaxStartups while many hosts scan it at once, so a scan can miss a key
    type: a key not found is looked for again (up to ``attempts`` scans, keys of every scan kept) before it
    counts as a mismatch.
    """
    scanned, scans, mismatches = {}, {}, []
    for entry in request.get("host_keys") or []:
        address = entry["address"]
        while True:
            offered, error = scanned.get(address, ([], ""))
            line, problem = pin_host_key(entry, offered, error)
            if line or not entry["scan"] or scans.get(address, 0) >= attempts:
                break
            if scans.get(address):
                time.sleep(pause)
            keys, error = scan_keys(address, request["timeout"])
            scanned[address] = (offered + [k for k in keys if k not in offered], error)
            scans[address] = scans.get(address, 0) + 1
        if line:
            facts["known_hosts"][entry["id"]] = line
        else:
            mismatches.append(problem)
    return ["SSH host key mismatch, refusing to trust the server: " + "; ".join(mismatches)] if mismatches else []


def check_links(request, facts, mounts):
    """What sits at each app path that is to become a symlink into the shared storage."""
    links = request.get("links") or {}
    if not links.get("paths"):
        return []
    storage_state = facts["mount_points"].get(links["storage"]) or mount_point_state(
        links["storage"], mounts, request.get("timeout") or 5, request.get("_types")
    )
    # A dead or hung storage cannot be looked into: every path stays to check once it is healed.
    storage_mounted = storage_state["mounted"] and storage_state["health"] in ("", HEALTHY)
    bad = []
    for rel in links["paths"]:
        facts["links"][rel] = link_status(links["app_root"], links["storage"], rel, storage_mounted)
        problem = link_problem(links["app_root"], rel, facts["links"][rel])
        if problem:
            bad.append(problem)
    uid, gid = resolve_id(links.get("owner") or "root", "user"), resolve_id(links.get("group") or "root", "group")
    # Until the storage is mounted, what is in it (clashes, link targets) is unknown: every path is still to check.
    facts["links_todo"] = links_todo(facts["links"], uid, gid) if storage_mounted else list(links["paths"])
    return ["cannot symlink into the shared storage: " + "; ".join(bad)] if bad else []


AUTOFS_DEVICE = "/dev/autofs"


def check_automounts(request, facts, autofs_device=AUTOFS_DEVICE):
    """A mount on first access needs the kernel's autofs: without it, systemd refuses to start the .automount unit."""
    facts["autofs"] = os.path.exists(autofs_device)
    paths = request.get("automounts") or []
    if not paths or facts["autofs"]:
        return []
    return [
        "automount needs the kernel's autofs, which this host does not offer (%s is missing), so systemd would refuse "
        "the .automount unit: set automount: false on %s" % (autofs_device, ", ".join(paths))
    ]


def probe(request, mountinfo=MOUNTINFO):
    """(facts, problems) for a request shaped like the module's options."""
    mounts = read_mounts(mountinfo)
    request = dict(request, _types=read_mount_types(mountinfo))
    facts = {"mount_points": {}, "ports": {}, "ids": {}, "missing": [], "known_hosts": {}, "links": {}, "links_todo": [], "autofs": False}
    problems = check_ids(request, facts)
    facts["missing"] = missing_packages(request.get("packages") or [])
    problems += check_mount_points(request, facts, mounts)
    problems += check_ports(request, facts)
    problems += check_host_keys(request, facts)
    problems += check_links(request, facts, mounts)
    problems += check_automounts(request, facts)
    return facts, problems
