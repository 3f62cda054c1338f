# syntax=docker/dockerfile:1
# mediamesh: one catalog of the media on your LAN. See docs/deploy.md.
#
#   docker build -t mediamesh .                      # base: debian:bookworm-slim from Docker Hub
#   docker build --build-arg BASE_IMAGE=... .        # any Debian bookworm image (scripts/image.sh makes
#                                                    # one with debootstrap where no registry is reachable)
# Both stages use Debian's own Python 3.11, so the venv built in the first runs unchanged in the second.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 python3-venv python3-dev gcc pkg-config libsmbclient-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/mediamesh
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A build behind a TLS-inspecting proxy passes its CA bundle as a secret (scripts/image.sh does);
# nothing of it stays in the image.
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && /opt/mediamesh/bin/pip install -q --no-cache-dir --disable-pip-version-check '.[smb-fast]' \
 && /opt/mediamesh/bin/python -c 'import mediamesh.server, smbc' \
 && find /opt/mediamesh -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
# ffmpeg: probes and thumbnails of video; libsmbclient: the smb-fast reads; tini: signals and zombies.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 libsmbclient ffmpeg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --gid 1000 mediamesh \
 && useradd --uid 1000 --gid 1000 --home-dir /data --no-create-home --shell /usr/sbin/nologin mediamesh \
 && mkdir -p /data /mnt/sources /config \
 && chown mediamesh:mediamesh /data
COPY --from=build /opt/mediamesh /opt/mediamesh
COPY docker/entrypoint.sh /usr/local/bin/mediamesh-entrypoint
COPY docker/healthcheck.py /usr/local/bin/mediamesh-healthcheck

# The parent mount (option B) is /mnt/sources: local sources may live below it and nowhere else.
ENV PATH=/opt/mediamesh/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    MEDIAMESH_DATA_DIR=/data \
    MEDIAMESH_LOCAL_ROOTS=/mnt/sources \
    MEDIAMESH_MOUNTS_DIR=/mnt/sources \
    MEDIAMESH_HOST=0.0.0.0 \
    MEDIAMESH_PORT=8470 \
    PUID=1000 \
    PGID=1000
VOLUME ["/data"]
EXPOSE 8470
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/mediamesh-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/mediamesh-entrypoint"]
CMD ["serve"]
