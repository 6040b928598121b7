# The pack files the repository's index refers to for data blobs (one ID per line), read from "restic cat index"
# of every index: a pack left by an interrupted backup is in no index, and restic check never reads it.
# Usage: python3 indexed_packs.py RUNNER JOB (RUNNER: the job runner, which runs restic with the job's secrets).
import json
import subprocess
import sys

runner, job = sys.argv[1], sys.argv[2]


def restic(*args):
    return subprocess.run(["python3", "-I", runner, "restic", job, *args], capture_output=True, text=True, check=True).stdout


packs = set()
for index_id in restic("list", "index").split():
    for pack in json.loads(restic("cat", "index", index_id)).get("packs", []):
        if any(blob.get("type") == "data" for blob in pack.get("blobs", [])):
            packs.add(pack["id"])
print("\n".join(sorted(packs)))
