# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the unit and integration suites: a skipped or xfailed test fails the session unless tests/skips.yml
lists it with a reason (tests/skip_policy.py)."""

pytest_plugins = ["skip_policy"]
