# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.keepdata.storage.plugins.modules import backup_export, backup_info, backup_restore

SNAPSHOTS = [
    {"id": "a" * 64, "short_id": "aaaaaaaa", "time": "2026-11-01T10:00:00Z", "hostname": "web1", "tags": ["keepdata-job=app"], "paths": ["/srv/app"]},
    {"id": "b" * 64, "short_id": "bbbbbbbb", "time": "2026-11-03T10:00:00Z", "hostname": "web1", "tags": ["keepdata-job=app"], "paths": ["/srv/app"]},
    {"id": "c" * 64, "short_id": "cccccccc", "time": "2026-11-02T10:00:00Z", "hostname": "web1", "tags": ["keepdata-job=app"], "paths": ["/srv/app"]},
]


def selection(**overrides):
    params = {"job": "app", "config_dir": "/etc/keepdata/backup", "source_host": "", "snapshot": "latest", "as_of": ""}
    params.update(overrides)
    return params


def test_restore_input_errors_name_the_option():
    params = selection(paths=["/srv/app/ok", "relative", "/srv/app\n"], target="/restores/in spect")
    errors = backup_restore.input_errors(params)
    assert errors[0].startswith('paths[1] "relative" must be an absolute path')
    assert errors[1] == "paths[2] must not contain control characters (newline, tab, ...)"
    assert errors[2].startswith('target "/restores/in spect" must be an absolute path')
    assert backup_restore.input_errors(selection(paths=["/srv/app/My Files"], target="")) == []


def test_export_refuses_an_existing_archive_unless_forced(tmp_path):
    dest = tmp_path / "app.tar"
    dest.write_text("older export")
    assert backup_export.input_errors(selection(dest=str(dest), force=False)) == ["dest %s exists: set force to replace it" % dest]
    assert backup_export.input_errors(selection(dest=str(dest), force=True)) == []
    assert backup_export.input_errors(selection(dest=str(tmp_path / "missing" / "a.tar"), force=False))[0].startswith("dest: the directory")
    assert backup_export.input_errors(selection(dest=str(tmp_path), force=True)) == ["dest %s is a directory: name the archive file" % tmp_path]


class Restic:
    def __init__(self):
        self.sizes = []

    def snapshots(self, host):
        assert host == "web1"
        return list(SNAPSHOTS)

    def restore_size(self, snapshot_id):
        self.sizes.append(snapshot_id)
        return 42

    def repository(self):
        return {"id": "r" * 64, "version": 2, "locks": 0}


@pytest.mark.parametrize("sizes, measured", [("none", []), ("latest", ["b" * 64]), ("all", ["a" * 64, "c" * 64, "b" * 64])])
def test_info_lists_oldest_first_with_the_sizes_asked(sizes, measured):
    restic = Restic()
    result = backup_info.info(selection(sizes=sizes, repository=True), restic, {"name": "app", "host": "web1"}, epoch_of=None)
    assert [snap["short_id"] for snap in result["snapshots"]] == ["aaaaaaaa", "cccccccc", "bbbbbbbb"]
    assert result["latest"]["short_id"] == "bbbbbbbb" and result["count"] == 3 and result["selected"] is None
    assert restic.sizes == measured
    assert result["repository"]["version"] == 2


def test_info_selects_as_of_a_time():
    result = backup_info.info(
        selection(as_of="2026-11-02 12:00", sizes="none", repository=False),
        Restic(),
        {"name": "app", "host": "web1"},
        epoch_of=lambda text: 1793620800,  # 2026-11-02 12:00 UTC
    )
    assert result["selected"]["short_id"] == "cccccccc"
    assert "repository" not in result
