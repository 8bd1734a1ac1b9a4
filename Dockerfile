# One image holds every Vigil executable; compose.yaml picks the command per service.
FROM swift:6.1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libnats-dev libsodium-dev libpq-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY libs libs
COPY services services
COPY clients clients
COPY Tests/VigilTesting Tests/VigilTesting
RUN swift build -c release --static-swift-stdlib \
    && mkdir /out && cp $(swift build -c release --show-bin-path)/vigil-* /out/

FROM debian:bookworm-slim
# openssh-client: agentless Linux audits; git: repository scans and fixes; python3-venv: Semgrep in its own environment
# (semgrep_scan). The image also carries vigil-connector, which the gateway serves.
RUN apt-get update && apt-get install -y --no-install-recommends libnats3.4 libsodium23 libpq5 libssl3 ca-certificates openssh-client \
      git python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 vigil \
    && python3 -m venv /opt/semgrep && /opt/semgrep/bin/pip install --no-cache-dir -q semgrep
ENV VIGIL_SEMGREP=/opt/semgrep/bin/semgrep
COPY --from=build /out/ /usr/local/bin/
COPY contracts /app/contracts
WORKDIR /app
ENV VIGIL_OPENAPI_PATH=/app/contracts/openapi.yaml
USER vigil
