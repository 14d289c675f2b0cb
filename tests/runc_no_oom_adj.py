#!/usr/bin/env python3
"""runc for the tests' private dockerd: drops the container's oomScoreAdj, then runs runc.

dockerd asks runc for an OOM score adjustment; a sandbox without CAP_SYS_RESOURCE refuses
negative ones and runc fails with "can't get final child's PID from pipe". Registered with
`--add-runtime` (tests/dockerd.py); the containers are otherwise untouched.
"""

import itertools
import json
import os
import sys

RUNC = "/usr/sbin/runc"

args = sys.argv[1:]
for flag, value in itertools.pairwise(args):
    if flag in ("--bundle", "-b"):
        config_path = os.path.join(value, "config.json")
        with open(config_path, encoding="utf-8") as fh:
            config = json.load(fh)
        config.get("process", {}).pop("oomScoreAdj", None)
        with open(config_path, "w", encoding="utf-8") as fh:
            json.dump(config, fh)
os.execv(RUNC, [RUNC, *args])
