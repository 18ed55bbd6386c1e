"""Ray nodes a test starts with ``ray start`` on loopback: a head of its own, worker nodes joining it, and a
node lost the hard way (its raylet and everything under it killed at once).

Every node has its own ports and its own short temp folder, and is stopped with its process tree: ``ray stop``
would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from support import processes


@dataclass
class Node:
    """One ``ray start --block`` process and the node it runs: ``address`` is the head's GCS address
    (``host:port``) and ``dashboard`` its URL; a worker node has the address of the head it joined."""

    process: subprocess.Popen
    temp_dir: str
    address: str
    dashboard: str
    killed: list[int] = field(default_factory=list)  # pids that kill() stopped

    def processes(self) -> list[psutil.Process]:
        """The node's processes now: ``ray start``, its raylet (and GCS, dashboard on a head), and the agents
        and workers the raylet started."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def runs(self, title: str) -> bool:
        """Whether a worker process of this node has a title (``ray::…``) that starts with ``title``."""
        for process in self.processes():
            try:
                if " ".join(process.cmdline()).startswith(title):
                    return True
            except psutil.Error:
                continue
        return False

    def kill(self) -> None:
        """Lose the node: SIGKILL its whole process tree at once, as a machine that goes away would."""
        tree = self.processes()
        for process in tree:
            try:
                process.kill()
                self.killed.append(process.pid)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)

    def stop(self) -> None:
        """Stop the node and remove its temp folder. Killed outright: a test's node holds nothing worth a
        graceful stop, and ``ray start --block`` takes up to 20 s to stop its processes one by one."""
        self.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_node(env: dict[str, str], *args: str, head: Node | None = None, wait: bool = True) -> Node:
    """``ray start`` a head (``head=None``) or a worker node joining ``head``, with ``args`` added
    (``--num-cpus=1`` unless given); returns once the head answers, or once the worker node has registered
    (``wait=False``: at once; :func:`wait_for_nodes` then waits for several starting together)."""
    free = processes.free_port
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    flags = [
        f"--dashboard-agent-listen-port={free()}",
        f"--dashboard-agent-grpc-port={free()}",
        f"--runtime-env-agent-port={free()}",
        f"--metrics-export-port={free()}",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        *(args if any(a.startswith("--num-cpus") for a in args) else ("--num-cpus=1", *args)),
    ]
    if head is None:
        address, dashboard = f"127.0.0.1:{free()}", f"http://127.0.0.1:{free()}"
        flags = [
            "--head",
            f"--port={address.rsplit(':', 1)[1]}",
            f"--dashboard-port={dashboard.rsplit(':', 1)[1]}",
            f"--ray-client-server-port={free()}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            *flags,
        ]
    else:
        address, dashboard = head.address, head.dashboard
        flags = [f"--address={address}", *flags]
        expected = len(alive_nodes(head)) + 1
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--block", *flags],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    node = Node(process, temp_dir, address, dashboard)
    try:
        if head is None:
            # public in every auth mode: KubeRay's probes and submitter use it without a token
            processes.wait_for_http(f"{dashboard}/api/gcs_healthz", process, "the Ray head")
        elif wait:
            wait_for_nodes(head, expected, [node])
    except BaseException:  # Ctrl-C included: nobody else knows of this node yet
        node.stop()
        raise
    return node


def wait_for_nodes(head: Node, count: int, starting: list[Node]) -> None:
    """Return once ``count`` nodes are alive in ``head``'s cluster; fail if one of the ``starting`` nodes'
    ``ray start`` exits first, or after 90 s."""
    deadline = time.monotonic() + 90
    while len(alive_nodes(head)) < count:
        for node in starting:
            if node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"a Ray worker node did not join (exit code {node.process.poll()})")
        time.sleep(0.3)


def alive_nodes(head: Node) -> list[dict]:
    """The cluster's nodes that its GCS holds alive, as the dashboard lists them."""
    return [n for n in list_nodes(head) if n["state"] == "ALIVE"]


def list_nodes(head: Node) -> list[dict]:
    """Every node the cluster's GCS knows, alive or dead (``node_id``, ``state``, ``resources_total``…)."""
    with urllib.request.urlopen(f"{head.dashboard}/api/v0/nodes?limit=100&detail=1", timeout=10) as response:
        return json.load(response)["data"]["result"]["result"]
