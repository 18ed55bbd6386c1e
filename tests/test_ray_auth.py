"""The locks of k8s/, tried for real on loopback: a Ray head with the token settings KubeRay gives every pod
(``authOptions: {mode: token}`` → ``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN`` from a Secret), and an MLflow
server started with the Deployment's flags and basic-auth settings.

Without them, anyone who reaches the dashboard (8265) submits a job — code execution as the pod's user, with
its S3 credentials — and anyone who reaches MLflow moves the ``@champion`` alias that the batch RayJobs load.
Each cluster and server here is this test's own (own ports, own temp dir, own process group) and is stopped by
signalling that process tree only: ``ray stop`` would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import processes
from support.k8s import REPO, build

BIN = Path(sys.executable).parent


def _request(url: str, *, method: str = "GET", body: dict | None = None, headers=None, auth=None):
    """(status, text) of an HTTP request; ``auth`` is (user, password) for HTTP basic authentication."""
    import base64

    headers = dict(headers or {})
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# --- Ray: the dashboard's job API needs the cluster's token --------------------------------------------------


@pytest.fixture
def ray_head_with_token(tmp_path, ray_head):
    """A local ``ray start --head`` with the environment KubeRay gives a pod under ``authOptions: {mode: token}``.

    Yields (dashboard URL, token, the environment of a pod of that cluster).
    """
    token = secrets.token_hex(32)  # what KubeRay puts in the cluster's Secret: random, ≥ 32 bytes
    home = (
        tmp_path / "home"
    )  # Ray would also look for (and a client write) ~/.ray/auth_token: not the real one
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, HOME=str(home))
    # The dashboard's health endpoint, which the fixture waits on, stays public: KubeRay's probes use it.
    url = ray_head(env, "--num-cpus=1", "--object-store-memory=80000000")
    yield url, token, env


@pytest.mark.slow
def test_job_submission_without_the_token_is_refused_and_with_it_accepted(ray_head_with_token, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    url, token, pod_env = ray_head_with_token
    marker = tmp_path / "pwned"
    attack = {"entrypoint": f"touch {marker}"}

    # Anyone who reaches port 8265: no token, or a wrong one, and nothing runs, nothing is listed.
    assert _request(f"{url}/api/jobs/", method="POST", body=attack)[0] == 401
    bearer = {"Authorization": f"Bearer {secrets.token_hex(32)}"}
    assert _request(f"{url}/api/jobs/", method="POST", body=attack, headers=bearer)[0] == 403
    assert _request(f"{url}/api/jobs/")[0] == 401
    assert _request(f"{url}/api/version")[0] == 401

    # KubeRay's submitter: `ray job submit` with the RAY_AUTH_MODE / RAY_AUTH_TOKEN it gets from the operator.
    driver = "import ray; ray.init(); print('joined with', ray.cluster_resources()['CPU'], 'CPU')"
    submitted = subprocess.run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            "--address",
            url,
            "--no-wait",
            "--",
            sys.executable,
            "-c",
            driver,
        ],
        env=pod_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-2000:]

    # The SDK with the token; the job's driver joins the cluster with the token it inherits from the node.
    client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
    jobs = client.list_jobs()
    assert len(jobs) == 1 and "joined with" in jobs[0].entrypoint, "the refused submissions left no job"
    deadline = time.monotonic() + 120
    while not (status := client.get_job_status(jobs[0].submission_id)).is_terminal():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    logs = client.get_job_logs(jobs[0].submission_id)
    assert status == JobStatus.SUCCEEDED and "joined with 1.0 CPU" in logs, logs[-2000:]
    assert not marker.exists()

    # The same cluster without the token on the client side: the SDK refuses to go on.
    with pytest.raises(Exception, match=r"401|[Aa]uthentication"):
        JobSubmissionClient(url, headers={"Authorization": "Bearer "}).list_jobs()


# --- MLflow: the registry (and so @champion) needs the Ray pods' password -----------------------------------


@pytest.fixture
def mlflow_with_basic_auth(tmp_path, free_port, stop_process_tree):
    """``mlflow server`` with k8s/base/mlflow.yaml's flags and basic_auth.ini, on loopback.

    Yields (URL, (admin user, password)). What only a cluster has is replaced: the database and artifact
    store are local, the auth store's SQLite file is in tmp_path, host/port/workers are loopback/free/1.
    """
    pytest.importorskip(
        "flask_wtf",
        reason="Flask-WTF is not installed: MLflow's basic-auth app needs it (mlflow[auth]; the image has it)",
    )
    objects = {(o["kind"], o["metadata"]["name"]): o for o in build(REPO / "k8s/base")}
    (container,) = objects["Deployment", "pixelplexus-mlflow"]["spec"]["template"]["spec"]["containers"]
    ini = objects["ConfigMap", "pixelplexus-mlflow-auth"]["data"]["basic_auth.ini"]
    auth_db = tmp_path / "basic_auth.db"
    config = tmp_path / "basic_auth.ini"
    config.write_text(ini.replace("sqlite:////mlflow-auth/basic_auth.db", f"sqlite:///{auth_db}"))
    assert str(auth_db) in config.read_text()

    port = free_port()
    values = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": (tmp_path / "artifacts").as_uri(),
    }
    overrides = {"--host": "127.0.0.1", "--port": str(port), "--workers": "1"}
    args = []
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        for name, replacement in values.items():
            value = value.replace(f"$({name})", replacement)
        args.append(f"{flag}={overrides.get(flag, value)}")
    assert "--app-name=basic-auth" in args

    admin = ("pixelplexus", secrets.token_urlsafe(18))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    secret_values = {"username": admin[0], "password": admin[1], "flask-secret-key": secrets.token_hex(16)}
    for entry in container["env"]:  # the Deployment's variables: plain values, or the Secret's keys
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif entry["valueFrom"]["secretKeyRef"]["name"] == "pixelplexus-mlflow-auth":
            env[entry["name"]] = secret_values[entry["valueFrom"]["secretKeyRef"]["key"]]
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
    server = subprocess.Popen(
        [str(BIN / "mlflow"), *container["command"][1:], *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(
            f"{url}/health", server, "mlflow server --app-name basic-auth"
        )  # the probes' path
        yield url, admin
    finally:
        stop_process_tree(server)


@pytest.mark.slow
def test_only_the_secrets_holder_moves_the_champion_alias(mlflow_with_basic_auth, monkeypatch):
    from mlflow import MlflowClient

    url, admin = mlflow_with_basic_auth
    api = f"{url}/api/2.0/mlflow"
    model = "pixelplexus-enhance"

    # The Ray pods: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the Secret.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
    client = MlflowClient(url)
    client.create_registered_model(model)
    run = client.create_run(client.create_experiment("train")).info.run_id
    first, second = (
        client.create_model_version(model, source=f"runs:/{run}/model", run_id=run).version for _ in range(2)
    )
    client.set_registered_model_alias(model, "champion", first)

    move = {"name": model, "alias": "champion", "version": second}
    # Anyone else in the cluster: no password, a wrong one, or an account of their own that nobody granted.
    assert _request(f"{api}/registered-models/alias", method="POST", body=move)[0] == 401
    wrong = (admin[0], admin[1] + "x")
    assert _request(f"{api}/registered-models/alias", method="POST", body=move, auth=wrong)[0] == 401
    assert _request(f"{api}/registered-models/alias", method="DELETE", body=move)[0] == 401
    lookup = f"{api}/registered-models/alias?name={model}&alias=champion"
    assert _request(lookup)[0] == 401, "reads need the password too"
    someone = ("someone", secrets.token_urlsafe(18))
    created = _request(
        f"{api}/users/create", method="POST", body=dict(zip(("username", "password"), someone)), auth=admin
    )
    assert created[0] == 200, created
    status, _ = _request(f"{api}/registered-models/alias", method="POST", body=move, auth=someone)
    assert status == 403, "default_permission NO_PERMISSIONS: an account sees nothing until granted"
    assert client.get_model_version_by_alias(model, "champion").version == first

    # The holder of the Secret moves it.
    assert _request(f"{api}/registered-models/alias", method="POST", body=move, auth=admin)[0] == 200
    assert client.get_model_version_by_alias(model, "champion").version == second
