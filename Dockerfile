# luad in a container: a build stage with the -dev packages that compiles the
# `luad` target in Release, then a slim runtime stage with only the shared
# libraries, running as the unprivileged uid 10001. Docker (BuildKit, the
# default builder since Docker 23) and podman/buildah build it as it is:
#   docker build -t luad .            podman build --format docker -t luad .
# (podman's default OCI format drops the HEALTHCHECK; `--format docker` keeps it).
# The README says how to run it; scripts/container-test.sh builds and runs it
# with podman in CI.
#
# Layer order is for rebuilds: the package installs depend only on
# scripts/dev.sh and come before the sources, so a source change recompiles
# and nothing more. apt's downloads and ccache's objects live in cache mounts
# (kept by the builder between builds, never in the image), so a rebuild after
# a change of packages or of a few sources is short; each stage has its own
# apt caches, since BuildKit runs the stages at once (and buildah 1.28 hangs on
# `sharing=locked` where apt deletes the lock file). .dockerignore keeps build
# folders, docs and .git out of the context.

FROM debian:12 AS build
# Keep the .debs in the cache mount (the official images' docker-clean deletes
# them after each install) and skip recommended packages: this stage is thrown
# away, only its time counts.
RUN rm -f /etc/apt/apt.conf.d/docker-clean \
 && echo 'APT::Install-Recommends "false";' > /etc/apt/apt.conf.d/no-recommends
WORKDIR /src
COPY scripts/dev.sh scripts/
RUN --mount=type=cache,id=luad-build-apt,target=/var/cache/apt \
    --mount=type=cache,id=luad-build-apt-lists,target=/var/lib/apt/lists \
    bash scripts/dev.sh deps ccache
COPY . .
# Only the `luad` target; the build tree goes (its objects stay in ccache), so
# the layer holds the sources and /opt/luad. The last two lines check that the
# installed binary runs and accepts the config it ships with.
RUN --mount=type=cache,id=luad-ccache,target=/root/.cache/ccache \
    cmake -S . -B /tmp/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
 && cmake --build /tmp/build -j"$(nproc)" --target luad \
 && cmake --install /tmp/build --prefix /opt/luad --strip \
 && rm -rf /tmp/build \
 && /opt/luad/bin/luad --version \
 && /opt/luad/bin/luad check /opt/luad/etc/luad/luad.toml

FROM debian:12-slim
# The shared libraries luad links (Lua is linked statically: LUAD_STATIC_LUA),
# and the unprivileged user with the two folders that are volumes (a new named
# volume takes their owner).
RUN --mount=type=cache,id=luad-runtime-apt,target=/var/cache/apt \
    --mount=type=cache,id=luad-runtime-apt-lists,target=/var/lib/apt/lists \
    rm -f /etc/apt/apt.conf.d/docker-clean \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libspdlog1.10 libfmt9 libssl3 libsqlite3-0 libtomlplusplus3 libpq5 ca-certificates \
 && groupadd --system --gid 10001 luad \
 && useradd --system --uid 10001 --gid luad --home-dir /var/lib/luad --no-create-home luad \
 && mkdir -p /run/luad /var/lib/luad \
 && chown luad:luad /run/luad /var/lib/luad
COPY --from=build /opt/luad/bin/luad /usr/local/bin/luad
COPY --from=build /opt/luad/etc/luad /etc/luad
# Numeric, so that an orchestrator can tell it is not root (runAsNonRoot).
USER 10001:10001
VOLUME ["/run/luad", "/var/lib/luad"]
ENV LUAD_SOCKET=/run/luad/luad.sock
# SIGTERM: the daemon CANCELs its processes, waits up to grace_period (5 s in
# configs/container.toml, under `docker stop`'s 10 s), flushes the store and
# exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s CMD ["luad", "ping"]
ENTRYPOINT ["luad", "serve", "--config", "/etc/luad/luad.toml"]
