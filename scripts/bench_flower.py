"""Flower's Ray simulation doing what `fi bench federation --embedded` does: N clients that each return the received
4 MB model plus a constant, FedAvg over all of them, no evaluation. Prints one JSON line:
{"devices": N, "mb": MB, "seconds_per_round": s, "rounds": R, "driver_peak_rss_bytes": b}.
Run from the git-ignored .venv-flower (scripts/bench-venv --flower); never used by CI or tests.

    .venv-flower/bin/python scripts/bench_flower.py --devices 1000 --mb 4 --rounds 3
"""
import argparse
import json
import resource
import time

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation

ap = argparse.ArgumentParser()
ap.add_argument("--devices", type=int, required=True)
ap.add_argument("--mb", type=int, default=4)
ap.add_argument("--rounds", type=int, default=3, help="measured rounds, after one warm-up round")
ap.add_argument("--cpus-per-client", type=float, default=1.0)
args = ap.parse_args()
n = args.mb * (1 << 20) // 4
ends = []


class Echo(NumPyClient):
    def fit(self, parameters, config):
        return [p + np.float32(1e-6) for p in parameters], 1, {}


class TimedFedAvg(FedAvg):
    def aggregate_fit(self, server_round, results, failures):
        out = super().aggregate_fit(server_round, results, failures)
        ends.append((time.monotonic(), len(results), len(failures)))
        return out


def client_fn(context: Context):
    return Echo().to_client()


def server_fn(context: Context):
    strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=args.devices,
                           min_available_clients=args.devices, min_evaluate_clients=0,
                           initial_parameters=ndarrays_to_parameters([np.zeros(n, dtype=np.float32)]))
    return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=args.rounds + 1))


run_simulation(server_app=ServerApp(server_fn=server_fn), client_app=ClientApp(client_fn=client_fn),
               num_supernodes=args.devices,
               backend_config={"client_resources": {"num_cpus": args.cpus_per_client, "num_gpus": 0.0}})
assert len(ends) == args.rounds + 1 and all(r == args.devices and f == 0 for _, r, f in ends), ends
print(json.dumps({"devices": args.devices, "mb": args.mb, "rounds": args.rounds,
                  "seconds_per_round": (ends[-1][0] - ends[0][0]) / args.rounds,
                  "driver_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
