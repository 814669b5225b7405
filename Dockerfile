# cutoff as a sidecar container: docker build -t cutoff . && docker run -p 3128:3128 cutoff
# (the CI profile: docker run -p 3128:3128 cutoff --config /etc/cutoff/ci.toml)
# (conf/docker-compose.yml and conf/kubernetes.yaml show it next to a test job).

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libc-ares-dev libtomlplusplus-dev libspdlog-dev \
      node-llhttp libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./build.sh build && strip build/cutoff

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libc-ares2 libspdlog1.10 libfmt9 libtomlplusplus3 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin cutoff
COPY --from=build /src/build/cutoff /usr/local/bin/cutoff
COPY conf/container.toml /etc/cutoff/cutoff.toml
# The CI profile, for `--config /etc/cutoff/ci.toml`.
COPY conf/ci.toml /etc/cutoff/ci.toml
COPY conf/healthcheck.sh /usr/local/bin/cutoff-healthcheck
USER cutoff
# 3128: the proxy; 9901: the admin endpoint (/healthz, /readyz, /metrics,
# /connections), which conf/container.toml binds on 0.0.0.0.
EXPOSE 3128 9901
# Healthy when the admin endpoint answers /healthz on 127.0.0.1:9901 and
# port 3128 accepts connections on the container's own address (so a config
# that listens on 127.0.0.1 only shows as unhealthy); see conf/healthcheck.sh.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/cutoff-healthcheck"]
ENTRYPOINT ["/usr/local/bin/cutoff"]
CMD ["--config", "/etc/cutoff/cutoff.toml"]
