# Slim two-stage image: dependencies and the package are installed into a virtualenv in the builder stage,
# the runtime stage copies only that virtualenv (no compilers, no pip cache, no sources). See docs/operations.md.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# dependencies first, from pyproject.toml only, so editing the code does not reinstall them; every version is
# pinned by constraints.txt (kept in the repository; `make lock` refreshes it), so a rebuild installs the same set
COPY pyproject.toml README.md constraints.txt ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip install --upgrade pip setuptools wheel && pip install -r /tmp/requirements.txt -c constraints.txt
COPY gateway ./gateway
RUN pip install --no-deps . && python -c "import gateway.cli, gateway.pipeline.chain"

# the demo snapshot (config/: demo apps and their secrets) is copied only with --build-arg DEMO_CONFIG=1
FROM python:3.11-slim AS config
ARG DEMO_CONFIG=0
COPY config/ /tmp/demo-config/
RUN mkdir -p /etc/gateway && if [ "$DEMO_CONFIG" = "1" ]; then cp -r /tmp/demo-config/. /etc/gateway/; fi

FROM python:3.11-slim AS runtime
LABEL org.opencontainers.image.title="apig-gateway" \
      org.opencontainers.image.description="asyncio API-gateway data plane for APIG v2-shaped API definitions" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_WORKERS=auto \
    GATEWAY_ADMIN_LISTEN=127.0.0.1:9080
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
# empty unless built with DEMO_CONFIG=1: mount your snapshot over /etc/gateway (a file or a directory of JSON/YAML)
COPY --from=config --chown=root:root /etc/gateway/ /etc/gateway/
USER gateway:gateway
EXPOSE 8080 9080
STOPSIGNAL SIGTERM
# readiness, not liveness: unhealthy until a snapshot is active (python -m gateway.healthcheck asks /readyz)
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-m", "gateway.healthcheck"]
ENTRYPOINT ["gateway", "run", "--config", "/etc/gateway"]
