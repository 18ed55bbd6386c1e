"""Where a batch's model can run: a model actor that no node of the cluster can place is refused at once,
before any work, rather than waiting for a GPU forever. (What happens when a node is lost: docs/scaling.md.)"""

from __future__ import annotations

import time

import pytest

from pixelplexus.batch.manifest import read_manifest
from pixelplexus.cli import main
from support import corpus
from support.batch import write_folder


@pytest.mark.slow
def test_a_model_actor_needing_a_gpu_no_node_has_fails_fast(ray_cluster, tmp_path, weights, capsys):
    png = corpus.good_images(size=(8, 6))["png_rgb"].data
    write_folder(tmp_path / "in", {f"{i}.png": png for i in range(3)})
    start = time.monotonic()
    flags = ["--model", str(weights["enhance"]), "--tile", "0", "--gpus-per-worker", "1"]
    code = main(["enhance", str(tmp_path / "in"), str(tmp_path / "out"), *flags])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "no node of the Ray cluster has 1 GPU" in err and "--gpus-per-worker 0" in err, err
    assert read_manifest(str(tmp_path / "out")).num_rows == 0  # nothing was done


def test_model_actors_that_would_hold_every_cpu_are_refused_at_once(ray_cluster, tmp_path, weights, capsys):
    """Each model actor holds a CPU: as many actors as the cluster has CPUs would leave the read and write
    tasks none, and the run would wait forever."""
    import ray

    cpus = int(ray.cluster_resources()["CPU"])
    png = corpus.good_images(size=(8, 6))["png_rgb"].data
    write_folder(tmp_path / "in", {f"{i}.png": png for i in range(3)})
    start = time.monotonic()
    flags = ["--model", str(weights["enhance"]), "--tile", "0", "--concurrency", str(cpus)]
    code = main(["enhance", str(tmp_path / "in"), str(tmp_path / "out"), *flags])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"the Ray cluster has {cpus} CPU(s)" in err and f"--concurrency {cpus - 1} or less" in err, err
    assert read_manifest(str(tmp_path / "out")).num_rows == 0
