"""The backend contract (contract.py) on the docker backend: the host's engine,
through real nginx, the app and MariaDB. test_swarm.py runs the same cases on
the swarm backend."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
from harness import LABEL, Site, case, run, sh  # noqa: E402

EXTEND = 600


class DockerEngine(contract.Engine):
    def __init__(self, site_name):
        self.site_name = site_name

    def objects(self):
        out = sh("docker", "ps", "-a", "--filter", f"label={LABEL}", "--filter",
                 f"label=ctfd-containers.site={self.site_name}", "--format",
                 "{{.Names}}\t{{json .Labels}}").stdout
        objs = {}
        for line in out.splitlines():
            name, _, labels = line.partition("\t")
            objs[name] = dict(kv.split("=", 1) for kv in json.loads(labels).split(",") if "=" in kv)
        return objs


ENGINE = DockerEngine(None)


def setup():
    site = Site("contract", extend_seconds=EXTEND, max_renewals=3)
    ENGINE.site_name = site.app.options["site"]
    contract.setup_db(site.db)
    return site


def teardown(site):
    site.close()


contract.register(case, ENGINE, EXTEND)

if __name__ == "__main__":
    run(setup, teardown)
