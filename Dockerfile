# syntax=docker/dockerfile:1.7
# One image for every entrypoint: `aiapp operator`, `aiapp gateway`, `aiapp index`, `aiapp test`.
# The operator runs it, and it also runs the gateway Deployments and the index and test Jobs
# that the operator creates (AIAPP_IMAGE / the chart's `image` value).
#
# The base is pinned to an exact patch release of Python 3.11 on Debian bookworm. Pin it by
# digest as well in a release pipeline (`python:3.11.14-slim-bookworm@sha256:...`); a tag alone
# can be re-pushed upstream.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: wheels for the package and all its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Only a few dependencies ship no wheel for some platforms; the compiler is there for them and
# stays in this stage.
RUN apt-get update \
    && apt-get install --no-install-recommends -y build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The same three paths tests/test_packaging_image.py installs from; keep them in step.
# The README is optional (a glob), pyproject.toml is not: one of the two must match.
COPY pyproject.toml README.md* ./
COPY operator/ ./operator/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels .

# --- runtime: Python, the installed package, a non-root user; no compiler, no sources --------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="aiapp" \
      org.opencontainers.image.description="AIApp operator, gateway, indexer and test runner" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# uid and gid 10001 match the chart's pod securityContext (runAsUser/runAsGroup/fsGroup), and a
# passwd entry lets libraries that ask for the user name (getpass) find one.
RUN groupadd --gid 10001 aiapp \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin aiapp

# The wheels are mounted, not copied, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels aiapp \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages/aiapp

USER 10001:10001
WORKDIR /tmp
# The operator's metrics and liveness ports, and the gateway's.
EXPOSE 9090 8081 8080
ENTRYPOINT ["aiapp"]
CMD ["--help"]
