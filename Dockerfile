# gitfirm daemon image.
# Build:  make lock (when pyproject.toml's dependencies change), then docker build -t gitfirm .
# Try:    docker run --rm gitfirm demo
# Run:    docker run -e VYOS_API_KEY_DC_FRA=... -e GITFIRM_BACKUP_KEY=... \
#           -v gitfirm-state:/var/lib/gitfirm -p 8080:8080 gitfirm \
#           run --repo https://git.example.net/netops/fleet.git --listen 0.0.0.0:8080 \
#           --state-dir /var/lib/gitfirm
# Kubernetes: deploy/kubernetes/.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies exactly as locked (make lock), each checked against its hash.
COPY requirements.lock ./
RUN python -m venv /opt/gitfirm \
    && /opt/gitfirm/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY reconciler ./reconciler
RUN /opt/gitfirm/bin/pip install --no-deps . \
    && /opt/gitfirm/bin/pip check
# `gitfirm demo` finds its example config repository here (<prefix>/share/gitfirm).
COPY example-repo /opt/gitfirm/share/gitfirm/example-repo

FROM python:${PYTHON_VERSION}-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gitfirm" \
      org.opencontainers.image.description="GitOps reconciler for VyOS router firmware" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/gitfirm/gitfirm" \
      org.opencontainers.image.documentation="https://github.com/gitfirm/gitfirm/tree/main/docs"
# tini reaps the git and ssh children and forwards SIGTERM (the daemon parks on it).
# git, ssh and gnupg: fetching the config repository and verifying signed commits.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini git openssh-client gnupg ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/gitfirm --uid 10001 gitfirm \
    && install -d -o 10001 -g 10001 /var/lib/gitfirm
COPY --from=build /opt/gitfirm /opt/gitfirm
ENV PATH=/opt/gitfirm/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/gitfirm
VOLUME ["/var/lib/gitfirm"]
EXPOSE 8080
# Probes the port the daemon on this state dir listens on, whatever --listen said.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["gitfirm", "health", "--state-dir", "/var/lib/gitfirm"]
ENTRYPOINT ["tini", "--", "gitfirm"]
CMD ["--help"]
