# respguard container image.
#   docker build -t respguard .
#   docker run --rm -p 6380:6380 -p 9380:9380 respguard --listen 0.0.0.0:6380 --upstream redis:6379
# Arguments after the image name replace CMD and are appended to the ENTRYPOINT's flags.

# ---- build: the same package list and cmake commands as scripts/run ----
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/lib/deps.sh scripts/lib/deps.sh
RUN bash -c 'source scripts/lib/deps.sh && install_missing_packages "${RESPGUARD_PACKAGES[@]}"'
COPY . .
# A developer's build trees may be in the context; their CMake caches point elsewhere.
RUN rm -rf build build-* \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target respguard

# ---- runtime: only the shared libraries respguard links against ----
# The packages of `ldd respguard` (libc6, libstdc++6, libgcc-s1 are in the base image);
# tests/deploy/dockerfile_test.py checks this list against ldd and dpkg -S.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libspdlog1.10 libfmt9 libyaml-cpp0.7 libprometheus-cpp-core1.0 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin respguard
COPY --from=build /src/build/respguard /usr/local/bin/respguard
# The documented config path: mount a ConfigMap or a file over /etc/respguard (read-only is fine).
COPY config/respguard.yaml /etc/respguard/respguard.yaml
# Fails the image build if a shared library is missing.
RUN respguard --version
USER respguard
EXPOSE 6380 9380
STOPSIGNAL SIGTERM
ENTRYPOINT ["respguard", "--config", "/etc/respguard/respguard.yaml"]
# The default config listens on loopback (right for a sidecar); published ports need 0.0.0.0.
CMD ["--listen", "0.0.0.0:6380", "--admin", "0.0.0.0:9380"]
