# gitfirm daemon image. Build: docker build -t gitfirm .
# Run:   docker run -e VYOS_API_KEY_DC_FRA=... -v gitfirm-state:/var/lib/gitfirm gitfirm \
#          run --repo https://git.example.net/netops/fleet.git --listen 0.0.0.0:8080 \
#          --state-dir /var/lib/gitfirm
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY reconciler ./reconciler
RUN python -m venv /opt/gitfirm && /opt/gitfirm/bin/pip install .

FROM python:3.12-slim
# git and ssh-keygen: the daemon fetches the config repo and verifies signed commits.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client gnupg ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/gitfirm --uid 10001 gitfirm
COPY --from=build /opt/gitfirm /opt/gitfirm
ENV PATH=/opt/gitfirm/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/gitfirm
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
ENTRYPOINT ["gitfirm"]
CMD ["--help"]
