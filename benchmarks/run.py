"""`make bench`: every figure issue 8 asks for, in one process and one run, on one engine.

1. Starts and stops (starts.py): the Docker SDK alone (the baseline), the service cold, the
   service's warm pool behind Traefik (warm.py), and a Swarm service (swarm.py; with --swarm-init
   the run makes a single-node swarm for that part only when the engine is in none, and
   leaves it); sequential distributions and sweeps of starts at once.
2. Status lookups and flag verifies at 200 requests/s with 1,000 live records (lookups.py),
   against /healthz measured the same way.
3. Flag verification latency under 10,000 stored flags, and throughput (flags_verify.py).

Prints each part's figures, then issue 8's acceptance ratios (PASS/MISS); writes
benchmarks/results/bench.json (with the commit) and bench.png (or in --results-dir). A
missed ratio is not a failure: the exit status is non-zero only when a start, stop or
request failed or the run could not be carried out. The figures depend on what else the
machine is doing: compare the ratios, taken against baselines measured in the same run.

    .venv/bin/python benchmarks/run.py [--runs 20] [--sweep 1,10,50] [--swarm-init]
        [--records 1000] [--rate 200] [--seconds 10] [--flags 10000] [--requests 3000]
        [--clients 8] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import flags_verify
import lookups
import report
import starts
from common import commit, machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    starts.add_arguments(parser)
    lookups.add_arguments(parser)
    flags_verify.add_arguments(parser)
    report.add_results_argument(parser)
    args = parser.parse_args()
    # A TERM (make interrupted, a CI timeout) unwinds like ^C: whatever the run made on the
    # shared engine (containers, networks, its swarm) is removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result: dict[str, Any] = {"benchmark": "bench", "commit": commit(), "machine_before": machine()}
    result |= starts.run(args.runs, starts.widths_of(args), swarm_init=args.swarm_init)
    report.print_starts(result)
    result["lookups"] = lookups.run(args.records, args.rate, args.seconds)
    report.print_lookups(result["lookups"])
    result["flags_verify"] = flags_verify.run(args.flags, args.requests, args.clients)
    flags_verify.print_result(result["flags_verify"])
    result["machine_after"] = machine()
    report.write(args.results_dir, "bench", result)
    report.chart(args.results_dir, "bench", result)
    report.print_acceptance(result)
    errors = (
        starts.errors_of(result)
        + lookups.errors_of(result["lookups"])
        + flags_verify.errors_of(result["flags_verify"])
    )
    return 1 if report.print_errors(errors) else 0


if __name__ == "__main__":
    sys.exit(main())
