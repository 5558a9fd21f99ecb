"""Subprocess helpers shared by the tests that need a fresh TensorFlow (logical devices,
TF_CONFIG clusters): free local ports and bounded runs of a cluster's workers."""

import json
import socket
import subprocess
import time

__all__ = ["free_ports", "run_cluster"]


def free_ports(n):
    """`n` TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_cluster(command, logs, timeout, env, cwd=None):
    """Runs one worker per log path of a TF_CONFIG cluster on free local ports.

    `command(index)` is worker `index`'s argv, `env(tf_config)` its environment. Returns
    (exit codes, or None when the workers did not all finish within `timeout` seconds in
    total: then all are killed; each worker's output). Out-of-step workers hang rather
    than fail, hence the bound.
    """
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(len(logs))]}
    procs = []
    try:
        for index, path in enumerate(logs):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            log = open(path, "w+")
            procs.append((subprocess.Popen(command(index), cwd=cwd, stdout=log,
                                           stderr=subprocess.STDOUT, env=env(tf_config)), log))
        deadline = time.monotonic() + timeout
        codes = [proc.wait(timeout=max(1.0, deadline - time.monotonic())) for proc, _ in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        outputs = []
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            outputs.append(log.read())
            log.close()
    return codes, outputs
