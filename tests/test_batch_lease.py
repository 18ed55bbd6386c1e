"""Two runs on one OUTPUT: the lease on OUTPUT, locally and on S3 (moto), and the command's answer to it.

Before the lease, two identical runs both processed everything and wrote two manifests each claiming
every row. These tests need no Ray: the lease is taken and refused before any processing, and the runs
that go through have only refused inputs, so nothing reaches the pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import boto3
import pytest

from pixelplexus.batch.lease import LEASE_KEY, Lease, LeaseHeld, LeaseLost
from pixelplexus.batch.manifest import read_manifest
from pixelplexus.cli import main
from pixelplexus.io.locations import Location
from pixelplexus.io.s3 import S3Settings


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path) -> tuple[Location, S3Settings]:
    """An OUTPUT that exists: a local folder, or a prefix of a fresh moto bucket."""
    if request.param == "local":
        (tmp_path / "out").mkdir()
        return Location.parse(str(tmp_path / "out")), S3Settings()
    bucket = request.getfixturevalue("s3_bucket")
    return Location.parse(f"s3://{bucket}/out"), S3Settings.from_env()


def lease_file(output: tuple[Location, S3Settings]) -> dict | None:
    location = output[0]
    if location.is_s3:
        try:
            body = boto3.client("s3").get_object(Bucket=location.bucket, Key=location.root + LEASE_KEY)
        except boto3.client("s3").exceptions.NoSuchKey:
            return None
        return json.loads(body["Body"].read())
    path = location.join(LEASE_KEY)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def test_a_second_run_is_refused_naming_the_holder_and_force_takes_over(output):
    first = Lease.acquire(*output, "run-1", seconds=60)
    held = lease_file(output)
    assert held["run_id"] == "run-1" and held["expires"] > time.time() + 50 and held["pid"] > 0
    with pytest.raises(
        LeaseHeld, match=r"in use by run run-1 \(.+@.+, pid \d+, since .+\); its lease expires at"
    ):
        Lease.acquire(*output, "run-2", seconds=60)
    assert lease_file(output)["run_id"] == "run-1"

    forced = Lease.acquire(*output, "run-2", seconds=60, force=True)
    with pytest.raises(LeaseLost, match="now held by run run-2"):
        first.renew()
    first.lost = "taken over"
    first.release()  # no longer its lease: run-2's stays
    assert lease_file(output)["run_id"] == "run-2"
    forced.renew()
    forced.release()
    assert lease_file(output) is None


def test_a_killed_runs_lease_expires_and_is_taken_over(output):
    location, _ = output
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pixelplexus.batch.lease import Lease\n"
            "from pixelplexus.io.locations import Location\n"
            "from pixelplexus.io.s3 import S3Settings\n"
            "Lease.acquire(Location.parse(sys.argv[1]), S3Settings.from_env(), 'killed-run', seconds=1.5)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            location.uri,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(LeaseHeld, match="killed-run"):
        Lease.acquire(*output, "next-run", seconds=60)
    time.sleep(max(0.0, lease_file(output)["expires"] - time.time()) + 0.2)
    lease = Lease.acquire(*output, "next-run", seconds=60)  # expired: taken over without --force
    assert lease_file(output)["run_id"] == "next-run"
    lease.release()


def test_the_heartbeat_keeps_a_lease_alive_and_release_removes_it(output):
    with Lease.acquire(*output, "long-run", seconds=0.6) as lease:
        time.sleep(1.5)  # more than twice the lease time: alive only through the heartbeat
        with pytest.raises(LeaseHeld, match="long-run"):
            Lease.acquire(*output, "other-run", seconds=60)
        assert lease.lost is None
    assert lease_file(output) is None


def test_the_command_refuses_a_held_output_and_force_proceeds(output, tmp_path, weights, capsys):
    location, settings = output
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "list.txt").write_text("../escape.png\n")  # refused: the run needs no Ray
    command = ["enhance", str(tmp_path / "in" / "list.txt"), location.uri, "--model", str(weights["enhance"])]
    other = Lease.acquire(location, settings, "other-run", seconds=60)

    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"OUTPUT {location.uri} is in use by run other-run (" in error and "--force" in error
    assert read_manifest(location.uri, settings).num_rows == 0  # nothing done

    assert main([*command, "--force"]) == 0
    assert "1 inputs: 0 ok, 1 error" in capsys.readouterr().out
    assert read_manifest(location.uri, settings).column("reason").to_pylist() == ["unsafe key"]
    assert lease_file(output) is None  # released at the end of the run
    with pytest.raises(LeaseLost):
        other.renew()


def test_runs_racing_for_an_expired_lease_get_one_winner(tmp_path):
    """Local takeover is atomic: of eight runs that find the same expired lease at once, exactly one wins.

    (On S3 the same is a compare-and-swap put on the lease's ETag, atomic on AWS; moto's server checks and
    writes in two steps, so it is not raced here.)"""
    import threading

    (tmp_path / "out").mkdir()
    output = (Location.parse(str(tmp_path / "out")), S3Settings())
    Lease.acquire(*output, "dead-run", seconds=0.01)  # never renewed: expired at once
    time.sleep(0.05)
    start, results = threading.Barrier(8), []

    def race(n: int) -> None:
        start.wait()
        try:
            results.append(Lease.acquire(*output, f"run-{n}", seconds=60).holder.run_id)
        except LeaseHeld:
            results.append(None)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [run for run in results if run]
    assert len(results) == 8 and len(winners) == 1 and lease_file(output)["run_id"] == winners[0]
    assert sorted(p.name for p in (tmp_path / "out" / "_pixelplexus").iterdir()) == [
        "lease.json",
        "lease.lock",
    ]
