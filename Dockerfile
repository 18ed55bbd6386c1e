# The PixelPlexus image for KubeRay: Ray's image of the pinned ray version plus this package, its
# dependencies, the job entrypoints and the Serve config (under /home/ray/pixelplexus, the manifests' paths).
#
#   CPU (head, CPU workers, the MLflow server):
#     docker build -t REGISTRY/pixelplexus:ray2.60.0-py311 .
#   GPU workers (CUDA torch):
#     docker build -t REGISTRY/pixelplexus:ray2.60.0-py311-gpu \
#         --build-arg RAY_VARIANT=py311-gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#
# RAY_VERSION must equal the `ray` pin in pyproject.toml and the manifests' rayVersion (tests check both).
# torch comes from TORCH_INDEX, installed before the package so that `pip install .` finds the pin satisfied:
# the CPU wheel index keeps the CPU image small (PyPI's Linux wheel carries the CUDA libraries); for the GPU
# image pick a CUDA build PyTorch publishes for the pinned torch that the nodes' drivers support (cu128: CUDA
# 12.8, driver ≥ 570), or TORCH_INDEX=https://pypi.org/simple for PyPI's default CUDA build.
ARG RAY_VERSION=2.60.0
ARG RAY_VARIANT=py311
FROM rayproject/ray:${RAY_VERSION}-${RAY_VARIANT}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PSYCOPG2_VERSION=2.9.10
# The MLflow server runs MLflow's basic-auth app (k8s/base/mlflow.yaml), which needs Flask-WTF (mlflow[auth]).
ARG FLASK_WTF_VERSION=1.3.0
WORKDIR /home/ray/pixelplexus

COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users platform ./platform
RUN TORCH_PIN="$(python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print(next(d for d in deps if d.startswith("torch==")))')" \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX}" "${TORCH_PIN}" \
    && pip install --no-cache-dir . "psycopg2-binary==${PSYCOPG2_VERSION}" "Flask-WTF==${FLASK_WTF_VERSION}" \
    && python -c "import flask_wtf, pixelplexus, ray; assert ray.__version__ == '${RAY_VERSION}', ray.__version__"

# The entrypoints and configs the RayJobs name, and the Serve config; the package itself is installed above.
COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users serve ./serve
