# cutoff as a sidecar container: docker build -t cutoff . && docker run -p 3128:3128 cutoff

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libtomlplusplus-dev libspdlog-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./build.sh build && strip build/cutoff

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libspdlog1.10 libfmt9 libtomlplusplus3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin cutoff
COPY --from=build /src/build/cutoff /usr/local/bin/cutoff
COPY conf/container.toml /etc/cutoff/cutoff.toml
USER cutoff
EXPOSE 3128
ENTRYPOINT ["/usr/local/bin/cutoff"]
CMD ["--config", "/etc/cutoff/cutoff.toml"]
