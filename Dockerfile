# One image for every service: `metering ingest run`, `metering projector run`,
# `metering api run`, `metering migrate`. Only schemas/ and services/ are installed:
# the local stack and the demo (deploy/) are dev tooling.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements-runtime.lock ./
COPY schemas ./schemas
COPY services ./services
# Only the runtime dependencies, each checked against its locked hashes; then the
# project itself without dependencies.
RUN pip install --no-cache-dir --prefix=/install --require-hashes -r requirements-runtime.lock \
 && pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home metering
COPY --from=build /install /usr/local
USER metering
ENTRYPOINT ["metering"]
CMD ["--help"]
