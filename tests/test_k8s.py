"""The KubeRay manifests in k8s/, checked without a cluster: the CRD schemas of KubeRay v1.7.0, the operator's
rules, the Serve config Ray would deploy, the job entrypoints, the overlays, the image and the versions."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelplexus.cli import main
from pixelplexus.kube import MANIFESTS, SERVE_PORT, render, serve_config
from support.k8s import (
    CRDS,
    REPO,
    admits,
    build,
    cluster_spec,
    containers,
    crd_errors,
    groups,
    identity,
    json_patch,
    merge_patch,
    network_policy_errors,
    operator_errors,
    ray_pod_labels,
    split_image,
    unknown_serve_keys,
)

K8S = REPO / "k8s"
BUILDS = [
    "base",
    "jobs",
    "overlays/dev-cpu",
    "overlays/dev-cpu/jobs",
    "overlays/prod-gpu",
    "overlays/prod-gpu/jobs",
]
APP_DIR = "/home/ray/pixelplexus/"  # where the Dockerfile puts the checkout's jobs/ and serve/
needs_crds = pytest.mark.skipif(
    not CRDS.is_dir(),
    reason=f"KubeRay CRDs not found at {CRDS} (set PIXELPLEXUS_SHARED to the shared folder)",
)


def pinned(package: str) -> str:
    """The version ``package`` is pinned to in pyproject.toml's dependencies."""
    return re.search(rf'"{package}(\[[^\]]*\])?==([^"]+)"', (REPO / "pyproject.toml").read_text())[2]


RAY_VERSION = pinned("ray")


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict]]:
    return {name: build(K8S / name) for name in BUILDS}


def ray_objects(built, kind=None):
    return [
        (name, obj)
        for name, objects in built.items()
        for obj in objects
        if obj["kind"] in ("RayCluster", "RayJob", "RayService") and kind in (None, obj["kind"])
    ]


def gpus(container: dict) -> float:
    return float(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


# --- parsing, schemas and operator rules ----------------------------------------------------------------------


def test_every_manifest_parses_and_names_its_object():
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 14
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path
        for doc in documents:
            if path.name == "kustomization.yaml":
                assert doc["kind"] == "Kustomization" and doc["resources"], path
            elif isinstance(doc, dict):
                assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            else:  # a JSON 6902 patch file
                assert all(op["op"] in ("add", "remove", "replace", "test") for op in doc), path


@needs_crds
def test_every_ray_resource_validates_against_the_kuberay_crds(built):
    checked = ray_objects(built)
    assert {obj["kind"] for _, obj in checked} == {"RayService", "RayJob"}
    for name, obj in checked:
        assert crd_errors(obj) == [], f"{name}: {obj['kind']} {obj['metadata']['name']}"


def test_every_ray_resource_passes_the_operators_rules(built):
    for name, obj in ray_objects(built):
        assert operator_errors(obj) == [], f"{name}: {obj['kind']} {obj['metadata']['name']}"


@needs_crds
def test_the_schema_check_is_strict(built):
    (service,) = [obj for _, obj in ray_objects(built, "RayService") if _ == "base"]
    bad = json_patch(
        service, [{"op": "add", "path": "/spec/rayClusterConfig/workerGroupSpecs/0/minReplica", "value": 1}]
    )
    assert any("'minReplica' was unexpected" in e for e in crd_errors(bad))
    bad = json_patch(
        service,
        [{"op": "replace", "path": "/spec/rayClusterConfig/workerGroupSpecs/0/maxReplicas", "value": "4"}],
    )
    assert any("maxReplicas" in e and "not of type 'integer'" in e for e in crd_errors(bad))
    bad = json_patch(
        service, [{"op": "remove", "path": "/spec/rayClusterConfig/workerGroupSpecs/0/groupName"}]
    )
    assert any("'groupName' is a required property" in e for e in crd_errors(bad))
    container = "/spec/rayClusterConfig/headGroupSpec/template/spec/containers/0"
    bad = json_patch(
        service, [{"op": "add", "path": f"{container}/envFrom/0/configMapRef/nmae", "value": "x"}]
    )
    assert any("'nmae' was unexpected" in e for e in crd_errors(bad))
    bad = json_patch(service, [{"op": "add", "path": "/spec/serveConfig", "value": "x"}])
    assert any("'serveConfig' was unexpected" in e for e in crd_errors(bad))


def test_the_operator_rules_catch_what_the_schema_lets_through(built):
    (job,) = [
        obj
        for name, obj in ray_objects(built, "RayJob")
        if name == "jobs" and obj["metadata"]["name"] == "pixelplexus-train"
    ]
    (service,) = [obj for name, obj in ray_objects(built, "RayService") if name == "base"]

    def errors(obj, *operations):
        return " ".join(operator_errors(json_patch(obj, list(operations))))

    assert "minReplicas 3 > maxReplicas 2" in errors(
        job, {"op": "replace", "path": "/spec/rayClusterSpec/workerGroupSpecs/0/minReplicas", "value": 3}
    )
    assert "replicas 5 not within" in errors(
        job, {"op": "replace", "path": "/spec/rayClusterSpec/workerGroupSpecs/0/replicas", "value": 5}
    )
    assert "submissionMode 'K8sMode'" in errors(
        job, {"op": "replace", "path": "/spec/submissionMode", "value": "K8sMode"}
    )
    assert "needs shutdownAfterJobFinishes" in errors(
        job, {"op": "replace", "path": "/spec/shutdownAfterJobFinishes", "value": False}
    )
    assert "longer than 47" in errors(
        job, {"op": "replace", "path": "/metadata/name", "value": "pixelplexus-" + "x" * 40}
    )
    assert "longer than 47" in errors(service, {"op": "replace", "path": "/metadata/name", "value": "p" * 48})
    assert "DNS-1035" in errors(service, {"op": "replace", "path": "/metadata/name", "value": "PixelPlexus"})
    head = "/spec/rayClusterConfig/headGroupSpec/template/spec/restartPolicy"
    assert "restartPolicy must be Never" in errors(
        service, {"op": "replace", "path": head, "value": "Always"}
    )
    assert "upgradeStrategy.type" in errors(
        service, {"op": "replace", "path": "/spec/upgradeStrategy/type", "value": "BlueGreen"}
    )
    assert "needs rayVersion >= 2.52.0" in errors(
        service, {"op": "replace", "path": "/spec/rayClusterConfig/rayVersion", "value": "2.51.1"}
    )
    assert "not supported for a RayJob" in errors(
        job, {"op": "add", "path": "/spec/rayClusterSpec/authOptions/enableK8sTokenAuth", "value": True}
    )


# --- the RayService -------------------------------------------------------------------------------------------


def test_the_rayservice_autoscales_with_v2_and_gpu_workers_from_zero(built):
    for name, service in ray_objects(built, "RayService"):
        spec = cluster_spec(service)
        assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["version"] == "v2"
        workers = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        assert "cpu-workers" in workers
        gpu_groups = [g for g in spec["workerGroupSpecs"] if any(gpus(c) for c in containers(g))]
        assert [g["groupName"] for g in gpu_groups] == ([] if "dev-cpu" in name else ["gpu-workers"])
        for group in gpu_groups:
            assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1
            for container in containers(group):
                resources = container["resources"]
                assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
        head_ports = {p["name"]: p["containerPort"] for p in containers(spec["headGroupSpec"])[0]["ports"]}
        served = yaml.safe_load(service["spec"]["serveConfigV2"])
        assert head_ports["serve"] == served["http_options"]["port"] == SERVE_PORT
        assert served["http_options"]["host"] == "0.0.0.0"


def test_serve_config_v2_is_a_valid_serve_deploy_schema_and_its_app_imports(built):
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    services = ray_objects(built, "RayService")
    assert len(services) == 3
    for name, service in services:
        config = yaml.safe_load(service["spec"]["serveConfigV2"])
        ServeDeploySchema.model_validate(config)
        assert unknown_serve_keys(config) == [], name
        for app in config["applications"]:
            module, _, attribute = app["import_path"].partition(":")
            assert callable(getattr(importlib.import_module(module), attribute))
            for deployment in app["deployments"]:
                if "autoscaling_config" in deployment:
                    AutoscalingConfig.model_validate(deployment["autoscaling_config"])
        models = {
            d["name"]: d["ray_actor_options"].get("num_gpus", 0)
            for d in config["applications"][0]["deployments"]
        }
        gpus_expected = 1 if "prod-gpu" in name else 0
        assert {task: models[task] for task in ("enhance", "colorize", "generate")} == dict.fromkeys(
            ("enhance", "colorize", "generate"), gpus_expected
        ), name
        assert models["ingress"] == 0, "the ingress never takes a GPU"


def test_the_serve_key_check_finds_misspelt_keys():
    config = serve_config(REPO, gpus=False)
    deployment = config["applications"][0]["deployments"][1]
    deployment["autoscaling_config"]["max_replica"] = 8
    deployment["max_ongoing_request"] = 8
    config["http_options"]["prot"] = 80
    assert unknown_serve_keys(config) == [
        "http_options.prot: not a field of HTTPOptionsSchema",
        "applications[0].deployments[1].autoscaling_config.max_replica: not a field of AutoscalingConfig",
        "applications[0].deployments[1].max_ongoing_request: not a field of DeploymentSchema",
    ]


def test_the_manifests_embed_serve_config_yaml_unchanged():
    for path, (current, rendered) in render(REPO).items():
        assert current == rendered, f"{path} is stale: run `pixelplexus k8s render` (make k8s)"
    (base,) = [yaml.safe_load((REPO / p).read_text()) for p, gpu in MANIFESTS.items() if not gpu]
    assert yaml.safe_load(base["spec"]["serveConfigV2"]) == yaml.safe_load(
        (REPO / "serve/config.yaml").read_text()
    )


def test_render_check_fails_when_serve_config_changes_and_render_fixes_it(tmp_path, capsys):
    for folder in ("serve", "k8s"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    command = ["k8s", "render", "--root", str(tmp_path)]
    assert main([*command, "--check"]) == 0

    config = tmp_path / "serve/config.yaml"
    config.write_text(
        config.read_text().replace("model: colorize,", "model: models:/pixelplexus-colorize/7,")
    )
    capsys.readouterr()
    assert main([*command, "--check"]) == 1
    stale = capsys.readouterr()
    assert re.search(r"^\+ +model: models:/pixelplexus-colorize/7$", stale.out, re.M), stale.out
    assert "out of date with serve/config.yaml" in stale.err and "make k8s" in stale.err

    assert main(command) == 0
    assert main([*command, "--check"]) == 0
    (service,) = [o for o in build(tmp_path / "k8s/overlays/prod-gpu") if o["kind"] == "RayService"]
    assert "models:/pixelplexus-colorize/7" in service["spec"]["serveConfigV2"]


def test_render_refuses_a_folder_without_the_serve_config(tmp_path, capsys):
    assert main(["k8s", "render", "--root", str(tmp_path), "--check"]) == 2
    assert "serve/config.yaml not found" in capsys.readouterr().err


def test_render_without_root_works_on_this_checkout_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no serve/ or k8s/ here: the checkout is found from the package's location
    assert main(["k8s", "render", "--check"]) == 0
    assert "k8s/ is up to date with serve/config.yaml" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_render_without_root_from_an_installed_wheel_asks_for_the_checkout(tmp_path, monkeypatch, capsys):
    import pixelplexus.kube

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pixelplexus.kube, "package_checkout", lambda: None)
    assert main(["k8s", "render", "--check"]) == 2
    assert "give the checkout with --root" in capsys.readouterr().err


# --- the RayJobs ----------------------------------------------------------------------------------------------


def entrypoint(job: dict) -> tuple[Path, list[str]]:
    """A RayJob's script (in the checkout) and its arguments."""
    python, script, *argv = shlex.split(job["spec"]["entrypoint"])
    assert python == "python" and script.startswith(APP_DIR), job["spec"]["entrypoint"]
    return REPO / script.removeprefix(APP_DIR), argv


def parse_job_flags(script: Path, argv: list[str]) -> argparse.Namespace:
    """The entrypoint's flags as the script's own parser reads them (nothing runs)."""
    if script.name == "train.py":
        from pixelplexus.training.command import add_arguments

        return add_arguments(argparse.ArgumentParser()).parse_args(argv)
    from pixelplexus.cli import build_parser

    assert argv[0] in ("enhance", "colorize")
    return build_parser().parse_args(argv)


def test_job_entrypoints_name_real_scripts_flags_and_configs(built):
    from pixelplexus.config import load_config

    jobs = ray_objects(built, "RayJob")
    assert len(jobs) == 9
    for name, job in jobs:
        script, argv = entrypoint(job)
        assert script.is_file(), f"{name}: {script}"
        args = parse_job_flags(script, argv)
        workers = cluster_spec(job)["workerGroupSpecs"]
        cluster_gpus = sum(g["replicas"] * sum(gpus(c) for c in containers(g)) for g in workers)
        if script.name == "train.py":
            config = load_config(REPO / args.config.removeprefix(APP_DIR))
            assert config.task == args.task
            assert args.workers * args.gpus_per_worker == cluster_gpus, f"{name}: one GPU per Train worker"
            if not args.gpus_per_worker:
                cpus = sum(
                    g["replicas"] * float(containers(g)[0]["resources"]["limits"]["cpu"]) for g in workers
                )
                assert args.workers * args.cpus_per_worker <= cpus
        else:
            assert args.input.startswith("s3://") and args.output.startswith("s3://")
            assert (args.gpus_per_worker > 0) == (cluster_gpus > 0), f"{name}: GPUs asked for and present"


def test_job_scripts_answer_help():
    for argv in (
        ["jobs/train.py", "--help"],
        ["jobs/batch.py", "enhance", "--help"],
        ["jobs/batch.py", "colorize", "--help"],
    ):
        result = subprocess.run(
            [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_jobs_clean_up_after_themselves_and_bring_nothing_at_start(built):
    from ray.runtime_env import RuntimeEnv

    for name, job in ray_objects(built, "RayJob"):
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        RuntimeEnv(**runtime_env)  # Ray's own check of the fields
        assert not {"working_dir", "py_modules", "pip", "conda", "uv"} & set(runtime_env), (
            f"{name}: the image holds the code and its dependencies; nothing is uploaded or installed"
        )


# --- pods, credentials, MLflow --------------------------------------------------------------------------------


def test_every_pod_requests_resources_and_reads_settings_and_credentials_by_reference(built):
    for name, obj in ray_objects(built):
        for group in groups(cluster_spec(obj)):
            for container in containers(group):
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][kind]), (
                        f"{name}: {container['name']}"
                    )
                assert container["envFrom"] == [
                    {"configMapRef": {"name": "pixelplexus-config"}},
                    {"secretRef": {"name": "pixelplexus-s3"}},
                ]
    for name, objects in built.items():
        kinds = {o["kind"] for o in objects}
        assert "Secret" not in kinds, "secret values never live in the repository"
        for config in (o for o in objects if o["kind"] == "ConfigMap"):
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(config["data"]), name
    for path in K8S.rglob("*.yaml"):
        assert "kind: Secret" not in path.read_text(), path


def test_mlflow_server_flags_parse_and_its_service_is_the_tracking_uri(built):
    from mlflow.cli import server

    for name in ("base", "overlays/dev-cpu", "overlays/prod-gpu"):
        objects = {(o["kind"], o["metadata"]["name"]): o for o in built[name]}
        deployment = objects["Deployment", "pixelplexus-mlflow"]
        service = objects["Service", "pixelplexus-mlflow"]
        config = objects["ConfigMap", "pixelplexus-config"]["data"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["mlflow", "server"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "pixelplexus-mlflow"
        values = {**config, "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow@db:5432/mlflow"}
        args = [
            re.sub(r"\$\((\w+)\)", lambda m, values=values: values[m[1]], arg) for arg in container["args"]
        ]
        options = server.make_context("server", args).params  # click parses and checks every flag
        assert options["artifacts_destination"].startswith("s3://") and options["host"] == "0.0.0.0"
        assert options["app_name"] == "basic-auth", "every request but /health needs a user and password"
        port = service["spec"]["ports"][0]
        assert options["port"] == port["port"] == container["ports"][0]["containerPort"]
        assert config["MLFLOW_TRACKING_URI"] == f"http://{service['metadata']['name']}:{port['port']}"
        assert (
            service["spec"]["selector"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_mlflow_authentication_settings_come_from_a_configmap_and_a_secret(built):
    import configparser

    for name in ("base", "overlays/dev-cpu", "overlays/prod-gpu"):
        objects = {(o["kind"], o["metadata"]["name"]): o for o in built[name]}
        pod = objects["Deployment", "pixelplexus-mlflow"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = env_of(container)
        assert secret_ref(container, "MLFLOW_AUTH_ADMIN_USERNAME") == ("pixelplexus-mlflow-auth", "username")
        assert secret_ref(container, "MLFLOW_AUTH_ADMIN_PASSWORD") == ("pixelplexus-mlflow-auth", "password")
        assert secret_ref(container, "MLFLOW_FLASK_SERVER_SECRET_KEY") == (
            "pixelplexus-mlflow-auth",
            "flask-secret-key",
        )
        # MLFLOW_AUTH_CONFIG_PATH is the ConfigMap's basic_auth.ini, mounted read-only
        path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {Path(m["mountPath"]): m for m in container["volumeMounts"]}
        mount = mounts[path.parent]
        assert mount.get("readOnly") is True
        config_map = volumes[mount["name"]]["configMap"]["name"]
        ini = configparser.ConfigParser()
        ini.read_string(objects["ConfigMap", config_map]["data"][path.name])
        settings = ini["mlflow"]
        assert "admin_password" not in settings, "the admin's password lives in the Secret, not the ConfigMap"
        assert settings["default_permission"] == "NO_PERMISSIONS"
        # the user store is a file on a writable volume of the pod
        database = Path(settings["database_uri"].removeprefix("sqlite:///"))
        assert settings["database_uri"].startswith("sqlite:////")
        assert "emptyDir" in volumes[mounts[database.parent]["name"]]
        assert not mounts[database.parent].get("readOnly")


# --- doors: Ray's token, the head's ports, the API key, MLflow's password, who may connect ---------------------

OPERATOR = {"app.kubernetes.io/name": "kuberay-operator", "app.kubernetes.io/instance": "kuberay-operator"}
OPERATOR_NAMESPACE = "kuberay-system"
INTRUDER = {"app": "notebook"}  # any other pod of the namespace
RAY_PORTS = {"gcs": 6379, "dashboard": 8265, "client": 10001, "serve": 8000, "metrics": 8080, "agent": 52365}
SECRET_NAMES = re.compile(r"KEY|PASSWORD|TOKEN|SECRET|CREDENTIAL", re.I)


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(container: dict, name: str) -> tuple[str, str] | None:
    """(Secret, key) that a container's env var ``name`` comes from; None when it is absent or not a Secret."""
    entry = env_of(container).get(name)
    if entry is None or "value" in entry:
        return None
    ref = entry.get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def test_every_ray_cluster_requires_rays_token(built):
    clusters = ray_objects(built)
    assert len(clusters) == 12
    for name, obj in clusters:
        spec = cluster_spec(obj)
        # mode token and no secretName: KubeRay makes a random token per cluster and hands it to every Ray
        # container, the autoscaler, the init containers, the RayJob submitter and its own dashboard client.
        assert spec.get("authOptions") == {"mode": "token"}, f"{name}: {obj['metadata']['name']}"
        for container in containers(obj):
            # KubeRay leaves a container's own RAY_AUTH_MODE / RAY_AUTH_TOKEN alone: one would override the token.
            assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(env_of(container)), (
                name
            )


def test_ray_ports_stay_inside_the_cluster(built):
    for name, obj in ray_objects(built):
        spec = cluster_spec(obj)
        head = spec["headGroupSpec"]
        assert head.get("serviceType") == "ClusterIP", f"{name}: the head and Serve Services stay internal"
        assert not head.get("enableIngress") and "headService" not in head, name
        assert "serveService" not in obj["spec"], name
        # The head Service exposes the head container's ports (KubeRay's defaults, Ray Client included, when it
        # names none): GCS for the workers, the dashboard for the operator and the submitter, Serve for clients.
        (head_container,) = [c for c in head["template"]["spec"]["containers"] if c["name"] == "ray-head"]
        ports = {p["name"]: p["containerPort"] for p in head_container["ports"]}
        expected = {"gcs-server": 6379, "dashboard": 8265}
        if obj["kind"] == "RayService":
            expected["serve"] = SERVE_PORT
        assert ports == expected, f"{name}: {obj['metadata']['name']}"
        for group in groups(spec):
            pod = group["template"]["spec"]
            assert not pod.get("hostNetwork"), name
            for container in containers(group):
                assert not any(p.get("hostPort") for p in container.get("ports", [])), name
                if group is not head:
                    assert not container.get("ports"), f"{name}: workers publish no port"


def test_secrets_reach_the_ray_containers_by_reference_only(built):
    for name, obj in ray_objects(built):
        serve = obj["kind"] == "RayService"
        for container in containers(obj):
            assert secret_ref(container, "MLFLOW_TRACKING_USERNAME") == (
                "pixelplexus-mlflow-auth",
                "username",
            )
            assert secret_ref(container, "MLFLOW_TRACKING_PASSWORD") == (
                "pixelplexus-mlflow-auth",
                "password",
            )
            # The ingress replica reads PIXELPLEXUS_API_KEY from its process environment, the pod's.
            api_key = secret_ref(container, "PIXELPLEXUS_API_KEY")
            assert api_key == (("pixelplexus-api", "api-key") if serve else None), (
                f"{name}: {container['name']}"
            )
    for name, objects in built.items():
        for obj in objects:
            for container in containers(obj):
                for entry in container.get("env", []):
                    if SECRET_NAMES.search(entry["name"]):
                        assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (
                            f"{name}: {entry['name']} must come from a Secret, never a literal"
                        )


def policies_of(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def test_network_policies_are_schema_valid_and_the_check_is_strict(built):
    policies = [p for name in BUILDS for p in policies_of(built[name])]
    assert len(policies) == 3 * 5
    for policy in policies:
        assert network_policy_errors(policy) == [], policy["metadata"]["name"]
    policy = policies[0]
    bad = json_patch(policy, [{"op": "add", "path": "/spec/ingress/0/form", "value": []}])
    assert any("'form' was unexpected" in e for e in network_policy_errors(bad))
    bad = json_patch(policy, [{"op": "replace", "path": "/spec/policyTypes", "value": ["Inbound"]}])
    assert any("Inbound" in e for e in network_policy_errors(bad))
    bad = json_patch(policy, [{"op": "remove", "path": "/spec/podSelector"}])
    assert any("'podSelector' is a required property" in e for e in network_policy_errors(bad))


def ray_pods(obj: dict) -> list[dict[str, str]]:
    """The labels of a Ray resource's pods, as KubeRay sets them (head first)."""
    cluster = f"{obj['metadata']['name']}-x7k2p"  # KubeRay names a RayService's clusters <name>-<random>
    return [ray_pod_labels(obj, group, cluster) for group in groups(cluster_spec(obj))]


@pytest.mark.parametrize("name", ["base", "overlays/dev-cpu", "overlays/prod-gpu"])
def test_network_policies_admit_only_the_cluster_the_operator_and_serve_clients(built, name):
    jobs_name = {"base": "jobs"}.get(name, f"{name}/jobs")
    objects = built[name] + built[jobs_name]
    namespace = objects[0]["metadata"].get("namespace", "default")
    policies = policies_of(objects)

    def admitted(pod, peer, port, *, peer_namespace=None):
        return admits(policies, pod, peer, port, namespace=namespace, peer_namespace=peer_namespace)

    clusters = {obj["metadata"]["name"]: (obj, ray_pods(obj)) for _, obj in ray_objects({name: objects})}
    assert set(clusters) == {
        "pixelplexus",
        "pixelplexus-train",
        "pixelplexus-batch-enhance",
        "pixelplexus-batch-colorize",
    }
    for cluster, (obj, pods) in clusters.items():
        head = pods[0]
        submitter = {  # the K8s Job's pod KubeRay makes for a RayJob (K8sJobMode)
            "ray.io/originated-from-crd": "RayJob",
            "ray.io/originated-from-cr-name": cluster,
            "app.kubernetes.io/created-by": "kuberay-operator",
            "batch.kubernetes.io/job-name": cluster,
        }
        for pod in pods:
            for peer in pods:  # every port between the pods of one cluster
                assert all(admitted(pod, peer, port) for port in (*RAY_PORTS.values(), 41234)), cluster
            for port in RAY_PORTS.values():  # nobody else, but Serve clients
                assert admitted(pod, INTRUDER, port) == (port == SERVE_PORT and obj["kind"] == "RayService")
                for other, (_, other_pods) in clusters.items():
                    if other != cluster:
                        assert admitted(pod, other_pods[0], port) == admitted(pod, INTRUDER, port), other
            # KubeRay's labels alone (another team's Ray cluster in the namespace) admit nothing more
            assert not admitted(pod, {**pod, "app.kubernetes.io/instance": "theirs"}, RAY_PORTS["gcs"])
        # the operator: the head's dashboard, nothing else; from its own namespace only
        assert admitted(head, OPERATOR, RAY_PORTS["dashboard"], peer_namespace=OPERATOR_NAMESPACE)
        for port in ("gcs", "client", "metrics", "agent"):
            assert not admitted(head, OPERATOR, RAY_PORTS[port], peer_namespace=OPERATOR_NAMESPACE), port
        assert not admitted(head, OPERATOR, RAY_PORTS["dashboard"], peer_namespace="default-" + namespace)
        # a RayJob's submitter: its own cluster's dashboard only
        is_job = obj["kind"] == "RayJob"
        assert admitted(head, submitter, RAY_PORTS["dashboard"]) == is_job, cluster
        assert not admitted(head, submitter, RAY_PORTS["gcs"]), cluster
        for other, (_, other_pods) in clusters.items():
            if other != cluster:
                assert not admitted(other_pods[0], submitter, RAY_PORTS["dashboard"]), (cluster, other)

    (mlflow,) = [o for o in objects if o["kind"] == "Deployment"]
    server = mlflow["spec"]["template"]["metadata"]["labels"]
    for _, pods in clusters.values():
        assert all(admitted(server, pod, 5000) for pod in pods)
    assert not admitted(server, INTRUDER, 5000)
    assert not admitted(server, OPERATOR, 5000, peer_namespace=OPERATOR_NAMESPACE)
    assert not admitted(server, {"ray.io/originated-from-crd": "RayJob"}, 5000)
    assert not admitted(server, clusters["pixelplexus"][1][0], 22), "the server's port only"


def test_the_policy_check_sees_an_open_door():
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "ray"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "ray"}}}]}],
        },
    }
    ray, other = {"app": "ray"}, {"app": "web"}
    assert admits([policy], ray, ray, 6379) and not admits([policy], ray, other, 6379)
    assert admits([policy], other, other, 6379), "a pod no policy selects takes everything"
    wide = json_patch(
        policy, [{"op": "add", "path": "/spec/ingress/-", "value": {"ports": [{"port": 8265}]}}]
    )
    assert admits([wide], ray, other, 8265) and not admits([wide], ray, other, 6379)
    anywhere = json_patch(
        policy, [{"op": "replace", "path": "/spec/ingress/0/from/0/podSelector", "value": {}}]
    )
    assert admits([anywhere], ray, other, 6379)
    assert not admits([anywhere], ray, other, 6379, peer_namespace="elsewhere"), "podSelector: same namespace"
    expressions = json_patch(
        policy,
        [
            {
                "op": "replace",
                "path": "/spec/ingress/0/from/0/podSelector",
                "value": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "ray"]}]},
            }
        ],
    )
    assert admits([expressions], ray, other, 6379) and not admits([expressions], ray, {"app": "x"}, 6379)


# --- overlays, image, versions --------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: the Python kustomize subset alone"
)
@pytest.mark.parametrize("name", BUILDS)
def test_the_kustomize_subset_builds_what_kubectl_kustomize_builds(built, name):
    output = subprocess.run(
        ["kubectl", "kustomize", str(K8S / name)], capture_output=True, text=True, check=True
    )
    expected = [o for o in yaml.safe_load_all(output.stdout) if o]
    assert sorted(built[name], key=identity) == sorted(expected, key=identity)


def test_overlays_set_namespaces_images_and_the_cpu_only_cluster(built):
    for name in BUILDS:
        expected = {"base": None, "jobs": None}.get(
            name, "pixelplexus-dev" if "dev-cpu" in name else "pixelplexus"
        )
        assert {o["metadata"].get("namespace") for o in built[name]} == {expected}, name
    dev = [
        c
        for _, obj in ray_objects({k: v for k, v in built.items() if "dev-cpu" in k})
        for c in containers(obj)
    ]
    assert dev and not any(gpus(c) for c in dev)
    prod = [
        c["image"]
        for _, obj in ray_objects({k: v for k, v in built.items() if "prod" in k})
        for c in containers(obj)
    ]
    assert prod and all(image.startswith("registry.example.com/ml/pixelplexus:") for image in prod)


def test_the_kustomize_subset_refuses_what_it_does_not_do():
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": 1},
    }
    with pytest.raises(NotImplementedError, match="use a JSON 6902 patch"):
        merge_patch(deployment, {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}})
    assert merge_patch(deployment, {"spec": {"replicas": 2, "paused": None}})["spec"] == {"replicas": 2}
    with pytest.raises(ValueError, match="is not 'gpu-workers'"):
        json_patch({"a": [{"g": "cpu"}]}, [{"op": "test", "path": "/a/0/g", "value": "gpu-workers"}])


def test_ray_version_matches_everywhere(built):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M)[1] == RAY_VERSION
    assert "FROM rayproject/ray:${RAY_VERSION}-${RAY_VARIANT}" in dockerfile
    assert re.search(r"^WORKDIR (\S+)$", dockerfile, re.M)[1] == APP_DIR.rstrip("/")
    assert "COPY --chown=ray:users jobs ./jobs" in dockerfile
    for name, obj in ray_objects(built):
        spec = cluster_spec(obj)
        assert spec["rayVersion"] == RAY_VERSION, name
        for group in groups(spec):
            for container in containers(group):
                _, tag = split_image(container["image"])
                assert tag == f"ray{RAY_VERSION}-py311" + ("-gpu" if gpus(container) else ""), container[
                    "image"
                ]
    for name, objects in built.items():
        for obj in objects:
            for container in containers(obj):
                assert f"ray{RAY_VERSION}" in container["image"], f"{name}: {container['image']}"


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "mlruns", "mlflow.db", "demo-output", "ray_results"} <= ignored
    assert not {"platform", "jobs", "serve", "pyproject.toml", "README.md"} & ignored


def test_the_image_holds_what_mlflows_basic_auth_app_needs():
    dockerfile = (REPO / "Dockerfile").read_text()
    version = re.search(r"^ARG FLASK_WTF_VERSION=(\S+)$", dockerfile, re.M)[1]
    assert '"Flask-WTF==${FLASK_WTF_VERSION}"' in dockerfile and "import flask_wtf" in dockerfile
    assert re.fullmatch(r"1\.\d+\.\d+", version), "mlflow[auth] asks for Flask-WTF<2"
