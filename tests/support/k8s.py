"""Offline checks of the KubeRay manifests: the CRDs' schemas, the operator's own rules, a kustomize subset.

- :func:`crd_errors` validates a RayCluster / RayJob / RayService against the ``v1`` OpenAPI schema of the
  KubeRay CRDs in ``$PIXELPLEXUS_SHARED/kuberay-crds``, converted as that folder's README says and made strict
  (``additionalProperties: false`` wherever ``properties`` are listed, so a misspelt key is an error).
- :func:`operator_errors` checks what the schema leaves to the operator (KubeRay's ``validation.go``).
- :func:`build` is the part of ``kustomize build`` the overlays use: ``resources``, ``namespace``, ``labels``
  (metadata only), ``images`` and ``patches``, either JSON 6902 (add/remove/replace/test) or strategic-merge
  patches without lists, which for custom resources kustomize applies as a JSON merge patch. Anything else is
  refused, so the subset never silently differs from kustomize; the tests compare it with ``kubectl kustomize``
  where that is installed.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PIXELPLEXUS_SHARED", REPO.parent / "shared"))
CRDS = SHARED / "kuberay-crds"
RAY_KINDS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47, "RayService": 47}  # KubeRay's Max*NameLength
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
UPGRADE_TYPES = {"NewCluster", "NewClusterWithIncrementalUpgrade", "None"}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

Manifest = dict[str, Any]


# --- the CRDs' schemas --------------------------------------------------------------------------------------


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's OpenAPI v3 schema as a strict JSON schema (the recipe of kuberay-crds/README.md)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(field) for name, field in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(option) for option in value]
        else:
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "required" in out:  # the API server fills defaults before it checks
        properties = schema.get("properties", {})
        out["required"] = [name for name in out["required"] if "default" not in properties.get(name, {})]
    if "properties" in schema and "additionalProperties" not in schema:
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str):
    """A jsonschema validator for ``kind``'s v1 schema."""
    import jsonschema

    with open(CRDS / f"ray.io_{RAY_KINDS[kind]}.yaml", encoding="utf-8") as f:
        crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = to_json_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(manifest: Manifest) -> list[str]:
    """Schema errors of a Ray resource, each as 'path: message'."""
    if manifest.get("apiVersion") != "ray.io/v1":
        return [f"apiVersion {manifest.get('apiVersion')!r} is not ray.io/v1"]
    errors = crd_validator(manifest["kind"]).iter_errors(manifest)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)


# --- the operator's rules -----------------------------------------------------------------------------------


def cluster_spec(manifest: Manifest) -> dict[str, Any]:
    """The RayCluster spec of a RayCluster, RayJob or RayService."""
    spec = manifest["spec"]
    return {
        "RayCluster": spec,
        "RayJob": spec.get("rayClusterSpec") or {},
        "RayService": spec.get("rayClusterConfig"),
    }[manifest["kind"]]


def groups(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The head group (first) and the worker groups of a RayCluster spec."""
    return [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]


def operator_errors(manifest: Manifest) -> list[str]:
    """What KubeRay rejects that the CRD schema lets through (a subset of its validation.go and webhooks)."""
    kind, name, spec = manifest["kind"], manifest["metadata"].get("name", ""), manifest["spec"]
    errors = []
    if len(name) > NAME_LIMITS[kind]:
        errors.append(f"{kind} name {name!r} is longer than {NAME_LIMITS[kind]} characters")
    if not DNS_1035.match(name):
        errors.append(f"{kind} name {name!r} is not a DNS-1035 label")
    if kind == "RayJob":
        mode = spec.get("submissionMode", "K8sJobMode")
        if mode not in SUBMISSION_MODES:
            errors.append(f"submissionMode {mode!r} is not one of {sorted(SUBMISSION_MODES)}")
        if spec.get("ttlSecondsAfterFinished", 0) > 0 and not spec.get("shutdownAfterJobFinishes"):
            errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
        if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
            errors.append("a suspended RayJob needs shutdownAfterJobFinishes: true")
        if not spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
            errors.append("one of rayClusterSpec or clusterSelector must be set")
        if mode in ("K8sJobMode", "HTTPMode", "SidecarMode") and not spec.get("entrypoint"):
            errors.append(f"{mode} needs an entrypoint")
        if spec.get("runtimeEnvYAML") is not None and not isinstance(
            yaml.safe_load(spec["runtimeEnvYAML"]), dict
        ):
            errors.append("runtimeEnvYAML is not a YAML mapping")
    if kind in ("RayJob", "RayService") and ((cluster_spec(manifest) or {}).get("authOptions") or {}).get(
        "enableK8sTokenAuth"
    ):
        errors.append(f"K8s token auth (enableK8sTokenAuth) is not supported for a {kind}")
    if kind == "RayService":
        upgrade = (spec.get("upgradeStrategy") or {}).get("type")
        if upgrade is not None and upgrade not in UPGRADE_TYPES:
            errors.append(f"upgradeStrategy.type {upgrade!r} is not one of {sorted(UPGRADE_TYPES)}")
    if cluster := cluster_spec(manifest):
        errors += _cluster_errors(cluster)
    return errors


def _cluster_errors(spec: dict[str, Any]) -> list[str]:
    errors = []
    autoscaling = spec.get("enableInTreeAutoscaling", False)
    v2 = autoscaling and (spec.get("autoscalerOptions") or {}).get("version") == "v2"
    names = [group.get("groupName", "head") for group in groups(spec)]
    if len(set(names)) != len(names):
        errors.append(f"worker group names repeat: {names}")
    for group_name, group in zip(names, groups(spec)):
        pod = group["template"]["spec"]
        if not pod.get("containers"):
            errors.append(f"{group_name}: no container")
        start = group.get("rayStartParams") or {}
        if group.get("resources") and any(
            start.get(key) for key in ("num-cpus", "num-gpus", "memory", "resources")
        ):
            errors.append(f"{group_name}: resources in both rayStartParams and resources")
        if "labels" in start:
            errors.append(f"{group_name}: rayStartParams['labels'] is not supported; use labels")
        if v2 and pod.get("restartPolicy", "Never") != "Never":
            errors.append(f"{group_name}: restartPolicy must be Never or unset with autoscaler v2")
        if group_name == "head":
            continue
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        if low > high:
            errors.append(f"{group_name}: minReplicas {low} > maxReplicas {high}")
        if "replicas" in group and not low <= group["replicas"] <= high:
            errors.append(f"{group_name}: replicas {group['replicas']} not within [{low}, {high}]")
    auth = spec.get("authOptions") or {}
    if auth.get("mode") == "token":  # KubeRay turns token auth on only for an explicit mode: token
        version = tuple(int(part) for part in re.findall(r"\d+", spec.get("rayVersion", ""))[:3])
        if version < (2, 52, 0):
            errors.append(
                f"authOptions.mode token needs rayVersion >= 2.52.0, got {spec.get('rayVersion')!r}"
            )
        if auth.get("enableK8sTokenAuth") and auth.get("secretName"):
            errors.append("authOptions: enableK8sTokenAuth and secretName are exclusive")
    elif auth.get("enableK8sTokenAuth"):
        errors.append("authOptions.enableK8sTokenAuth needs mode token")
    head_env = {e["name"] for e in spec["headGroupSpec"]["template"]["spec"]["containers"][0].get("env", [])}
    if "RAY_enable_autoscaler_v2" in head_env and (spec.get("autoscalerOptions") or {}).get("version"):
        errors.append("both autoscalerOptions.version and RAY_enable_autoscaler_v2 are set")
    return errors


# --- a kustomize subset -------------------------------------------------------------------------------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}


def build(directory: Path) -> list[Manifest]:
    """The objects ``kustomize build directory`` makes, for the subset described in the module docstring."""
    kustomization = _load(directory / "kustomization.yaml")
    unsupported = set(kustomization) - KUSTOMIZATION_KEYS
    if unsupported:
        raise NotImplementedError(
            f"{directory}: kustomization fields not in this subset: {sorted(unsupported)}"
        )
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += build(path)
        else:
            with open(path, encoding="utf-8") as f:
                objects += [doc for doc in yaml.safe_load_all(f) if doc]
    ids = [identity(o) for o in objects]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{directory}: the same object twice: {ids}")
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, patch, directory)
    for obj in objects:
        if "namespace" in kustomization:
            obj["metadata"]["namespace"] = kustomization["namespace"]
        for label in kustomization.get("labels", []):
            if set(label) != {"pairs"}:
                raise NotImplementedError(f"{directory}: only labels[].pairs (metadata labels) are supported")
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in kustomization.get("images", []):
            _set_images(obj, image)
    return objects


def identity(obj: Manifest) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _load(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _apply_patch(objects: list[Manifest], entry: dict[str, Any], directory: Path) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise NotImplementedError(f"patch fields not in this subset: {sorted(entry)}")
    body = _load(directory / entry["path"]) if "path" in entry else yaml.safe_load(entry["patch"])
    if "target" in entry:
        target = entry["target"]
        if set(target) - {"kind", "name"}:
            raise NotImplementedError(f"patch target fields not in this subset: {sorted(target)}")
    elif isinstance(body, dict):
        target = {"kind": body["kind"], "name": body["metadata"]["name"]}
    else:
        raise ValueError(f"a JSON 6902 patch needs a target: {entry}")
    matched = [
        i
        for i, obj in enumerate(objects)
        if obj["kind"] == target.get("kind", obj["kind"])
        and re.fullmatch(target.get("name", ".*"), obj["metadata"]["name"])
    ]
    if not matched:
        raise ValueError(f"patch target {target} matches no object")
    for i in matched:
        objects[i] = json_patch(objects[i], body) if isinstance(body, list) else merge_patch(objects[i], body)


def merge_patch(obj: Any, patch: Any) -> Any:
    """A strategic-merge patch as kustomize applies it to a custom resource: maps merge, the rest replaces.

    Built-in kinds merge lists by key (containers by name); patches with lists for them are refused.
    """
    if isinstance(patch, dict) and ("$patch" in patch or any(str(k).startswith("$") for k in patch)):
        raise NotImplementedError("strategic-merge directives ($patch, …) are not in this subset")
    if isinstance(obj, dict) and "." not in obj.get("apiVersion", "x.y").split("/")[0] and _has_list(patch):
        raise NotImplementedError(
            f"lists in a strategic-merge patch of {obj.get('kind')}: use a JSON 6902 patch"
        )
    if not (isinstance(obj, dict) and isinstance(patch, dict)):
        return copy.deepcopy(patch)
    merged = dict(obj)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(obj.get(key), value)
    return merged


def _has_list(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, dict) and any(map(_has_list, value.values())))


def json_patch(obj: Manifest, operations: list[dict[str, Any]]) -> Manifest:
    """RFC 6902 ``add``, ``remove``, ``replace`` and ``test`` on a copy of ``obj``."""
    obj = copy.deepcopy(obj)
    for op in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        container = obj
        for part in parents:
            container = container[int(part)] if isinstance(container, list) else container[part]
        if isinstance(container, list):
            index = len(container) if last == "-" else int(last)
            if not 0 <= index <= len(container) - (op["op"] != "add"):
                raise ValueError(f"{op['op']} {op['path']}: index out of range")
        else:
            index = last
            if op["op"] in ("remove", "replace", "test") and index not in container:
                raise ValueError(f"{op['op']} {op['path']}: no such field")
        if op["op"] == "test":
            if container[index] != op["value"]:
                raise ValueError(f"test {op['path']}: {container[index]!r} is not {op['value']!r}")
        elif op["op"] == "remove":
            del container[index]
        elif op["op"] == "replace":
            container[index] = copy.deepcopy(op["value"])
        elif op["op"] == "add" and isinstance(container, list):
            container.insert(index, copy.deepcopy(op["value"]))
        elif op["op"] == "add":
            container[index] = copy.deepcopy(op["value"])
        else:
            raise NotImplementedError(f"JSON patch op {op['op']!r} is not in this subset")
    return obj


def split_image(image: str) -> tuple[str, str | None]:
    """``registry/name:tag`` → (``registry/name``, ``tag``); a digest is refused."""
    if "@" in image:
        raise NotImplementedError(f"image digests are not in this subset: {image}")
    name, sep, tag = image.rpartition(":")
    return (name, tag) if sep and "/" not in tag else (image, None)


def containers(obj: Any) -> list[dict[str, Any]]:
    """Every container and init container anywhere in ``obj`` (pod templates of any kind)."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict) and "image" in c]
            found += containers(value)
    elif isinstance(obj, list):
        for value in obj:
            found += containers(value)
    return found


def _set_images(obj: Manifest, image: dict[str, Any]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise NotImplementedError(f"images fields not in this subset: {sorted(image)}")
    for container in containers(obj):
        name, tag = split_image(container["image"])
        if name == image["name"]:
            name, tag = image.get("newName", name), image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


# --- the Serve config ---------------------------------------------------------------------------------------


def unknown_serve_keys(data: dict[str, Any], model: Any = None, path: str = "") -> list[str]:
    """Keys of a Serve config that Ray's schema does not know (Ray ignores them; a typo would go unnoticed)."""
    if model is None:
        from ray.serve.schema import ServeDeploySchema as model
    fields = model.model_fields
    errors = []
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{path}{key}: not a field of {model.__name__}")
            continue
        inner = _model_in(fields[key].annotation)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if inner is not None and isinstance(item, dict):
                where = f"{path}{key}[{i}]." if isinstance(value, list) else f"{path}{key}."
                errors += unknown_serve_keys(item, inner, where)
    return errors


def _model_in(annotation: Any) -> Any:
    """The one pydantic model in a field's type (``X``, ``Optional[X]``, ``List[X]``, ``Union[Dict, X]``)."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = [model for arg in typing.get_args(annotation) if (model := _model_in(arg)) is not None]
    return found[0] if len(found) == 1 else None


# --- NetworkPolicies ----------------------------------------------------------------------------------------

_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_PEER = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "podSelector": _SELECTOR,
        "namespaceSelector": _SELECTOR,
        "ipBlock": {
            "type": "object",
            "additionalProperties": False,
            "required": ["cidr"],
            "properties": {
                "cidr": {"type": "string"},
                "except": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    "not": {
        "anyOf": [{"required": ["ipBlock", "podSelector"]}, {"required": ["ipBlock", "namespaceSelector"]}]
    },
}
_PORT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
        "port": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]},
        "endPort": {"type": "integer", "minimum": 1, "maximum": 65535},
    },
}
_RULE = {"type": "array", "items": {"$ref": "#/definitions/peer"}}
NETWORK_POLICY_SCHEMA = {  # networking.k8s.io/v1 NetworkPolicy, strict: a misspelt key is an error
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "definitions": {"peer": _PEER},
    "properties": {
        "apiVersion": {"const": "networking.k8s.io/v1"},
        "kind": {"const": "NetworkPolicy"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["podSelector"],
            "properties": {
                "podSelector": _SELECTOR,
                "policyTypes": {
                    "type": "array",
                    "items": {"enum": ["Ingress", "Egress"]},
                    "uniqueItems": True,
                },
                "ingress": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"from": _RULE, "ports": {"type": "array", "items": _PORT}},
                    },
                },
                "egress": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"to": _RULE, "ports": {"type": "array", "items": _PORT}},
                    },
                },
            },
        },
    },
}


def network_policy_errors(policy: Manifest) -> list[str]:
    """Schema errors of a NetworkPolicy (the v1 API's fields, strictly), each as 'path: message'."""
    import jsonschema

    validator = jsonschema.Draft7Validator(NETWORK_POLICY_SCHEMA)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(policy)
    ]
    for i, rule in enumerate(policy.get("spec", {}).get("ingress", [])):
        for port in rule.get("ports", []):
            if "endPort" in port and not isinstance(port.get("port"), int):
                errors.append(f"spec/ingress/{i}: endPort needs a numeric port")
    return sorted(errors)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels`` (an empty selector matches everything)."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if not {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]:
            return False
    return True


def admits(
    policies: list[Manifest],
    pod: dict[str, str],
    peer: dict[str, str],
    port: int,
    *,
    namespace: str = "default",
    peer_namespace: str | None = None,
) -> bool:
    """Whether a TCP connection from a pod labelled ``peer`` to ``port`` of a pod labelled ``pod`` is let in.

    Kubernetes' rule: a pod that no policy of its namespace selects (for Ingress) accepts everything; a selected
    pod accepts what at least one rule of one selecting policy admits. ipBlock peers are not pods: ignored.
    """
    peer_namespace = peer_namespace or namespace
    peer_namespace_labels = {"kubernetes.io/metadata.name": peer_namespace}
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", "default") == namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(
                p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports
            ):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for candidate in peers:
                if "ipBlock" in candidate:
                    continue
                if "namespaceSelector" in candidate:
                    if not selects(candidate["namespaceSelector"], peer_namespace_labels):
                        continue
                elif peer_namespace != namespace:
                    continue
                if selects(candidate.get("podSelector"), peer):
                    return True
    return False


def ray_pod_labels(manifest: Manifest, group: dict[str, Any], cluster_name: str) -> dict[str, str]:
    """The labels KubeRay gives a pod of ``group`` (its pod template's, then its own; KubeRay's labelPod)."""
    node_type = "worker" if "groupName" in group else "head"
    fixed = {"ray.io/cluster": cluster_name, "ray.io/node-type": node_type}
    fixed["ray.io/group"] = group.get("groupName", "headgroup")
    return {
        "ray.io/is-ray-node": "yes",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
        **(group["template"].get("metadata") or {}).get("labels", {}),  # may override the two above
        **fixed,  # may not be overridden
    }
