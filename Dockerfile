# One image for every role: `agentclusters operator`, `agentclusters gateway` and the
# `agentclusters runtime` each replica pod runs (the operator's default runtimeCommand).
# Not built by the test suite (the development machines have no Docker engine); the devcluster
# runs the same console script from the checkout's virtualenv instead.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentclusters ./agentclusters
COPY agent_api ./agent_api
COPY agent_operator ./agent_operator
COPY agent_runtime ./agent_runtime
COPY agent_gateway ./agent_gateway
COPY devcluster ./devcluster
RUN python -m venv /opt/agentclusters && /opt/agentclusters/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/agentclusters /opt/agentclusters
ENV PATH=/opt/agentclusters/bin:$PATH PYTHONUNBUFFERED=1
# Matches the chart's podSecurityContext (runAsNonRoot, runAsUser/runAsGroup 10001).
RUN groupadd --gid 10001 agent && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin agent
USER 10001:10001
ENTRYPOINT ["agentclusters"]
CMD ["--help"]
