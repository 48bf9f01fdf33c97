# Slim two-stage image: dependencies and the package are installed into a virtualenv in the builder stage,
# the runtime stage copies only that virtualenv (no compilers, no pip cache, no sources). See docs/operations.md.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# dependencies first, from pyproject.toml only, so editing the code does not reinstall them
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip install --upgrade pip setuptools wheel && pip install -r /tmp/requirements.txt
COPY gateway ./gateway
RUN pip install --no-deps . && python -c "import gateway.cli, gateway.pipeline.chain"

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
# the example snapshot; mount your own over /etc/gateway (a file or a directory of JSON/YAML files)
COPY --chown=root:root config/ /etc/gateway/
USER gateway:gateway
EXPOSE 8080 9080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; h,_,p=os.environ.get('GATEWAY_ADMIN_LISTEN','127.0.0.1:9080').rpartition(':'); h='127.0.0.1' if h in ('','0.0.0.0','[::]','::') else h.strip('[]'); h='['+h+']' if ':' in h else h; sys.exit(0 if u.urlopen('http://%s:%s/healthz' % (h,p), timeout=2).status==200 else 1)"]
ENTRYPOINT ["gateway", "run", "--config", "/etc/gateway"]
