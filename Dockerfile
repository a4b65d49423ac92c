# luad in a container: a build stage with the -dev packages, then a slim
# runtime stage with only the shared libraries, running as a non-root user.
#   docker build -t luad .
#   docker run -d --name luad -v luad-run:/run/luad -v luad-data:/var/lib/luad luad
#   docker exec luad luad ping
# The build stage's commands are scripts/container-build.sh, which the tests
# also run (CTest `container_build`), so they are exercised without Docker.

FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN bash scripts/container-build.sh /opt/luad

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      liblua5.4-0 libspdlog1.10 libfmt9 libssl3 libsqlite3-0 libtomlplusplus3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/luad luad \
 && mkdir -p /run/luad /var/lib/luad \
 && chown luad:luad /run/luad /var/lib/luad
COPY --from=build /opt/luad/bin/luad /usr/local/bin/luad
COPY --from=build /opt/luad/etc/luad /etc/luad
USER luad
VOLUME ["/run/luad", "/var/lib/luad"]
ENV LUAD_SOCKET=/run/luad/luad.sock
HEALTHCHECK --interval=30s --timeout=5s CMD ["luad", "ping"]
ENTRYPOINT ["luad", "serve", "--config", "/etc/luad/luad.toml"]
