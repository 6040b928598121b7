"""Print a tree as sorted JSON lines: path, type, mode, owner, size and sha256 of files, link targets, hard links.

Two trees are the same when their listings are equal: what a restore (or an extracted export) must give.
Usage: tree_listing.py ROOT [--no-hardlinks] [--no-specials]  (paths relative to ROOT; ROOT itself is not listed)
--no-hardlinks leaves the hard-link groups out: restic's dump (the export) writes hard links as copies.
--no-specials leaves FIFOs and devices out: restic's dump does not carry them.
"""

import hashlib
import json
import os
import stat
import sys


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing(root, hardlinks=True, specials=True):
    entries, inodes = [], {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            entry = {"path": os.path.relpath(path, root), "mode": oct(stat.S_IMODE(info.st_mode)), "uid": info.st_uid, "gid": info.st_gid}
            if stat.S_ISLNK(info.st_mode):
                entry.update(type="link", target=os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entry.update(type="dir")
            elif stat.S_ISREG(info.st_mode):
                entry.update(type="file", size=info.st_size, sha256=sha256(path))
                if hardlinks and info.st_nlink > 1:
                    inodes.setdefault((info.st_dev, info.st_ino), []).append(entry["path"])
            elif specials:
                entry.update(type="other")
            else:
                continue
            entries.append(entry)
    # Hard links: each file names the first path of its group, so equal listings mean equal link groups.
    for group in inodes.values():
        first = sorted(group)[0]
        for entry in entries:
            if entry["path"] in group:
                entry["hardlink_group"] = first
    return sorted(entries, key=lambda entry: entry["path"])


if __name__ == "__main__":
    for item in listing(sys.argv[1], hardlinks="--no-hardlinks" not in sys.argv[2:], specials="--no-specials" not in sys.argv[2:]):
        print(json.dumps(item, sort_keys=True, ensure_ascii=True))
