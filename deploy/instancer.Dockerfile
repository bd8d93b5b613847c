# The instancer service, for deploy/docker-compose.yml (built with context = the repository root):
#
#   docker compose -f deploy/docker-compose.yml build instancer
#
# Only pyproject.toml, README.md (the package's readme) and src/ are copied: the rest of the
# checkout (.venv, data/ with its generated tokens, .git, tests) never reaches the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# iptables, for the isolation rules `instancer serve` keeps in the host's firewall (the
# compose file gives this container the host's network and NET_ADMIN). Its flavour must be
# the host engine's: nft or legacy (build argument IPTABLES).
ARG IPTABLES=nft
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables \
    && update-alternatives --set iptables "/usr/sbin/iptables-${IPTABLES}" \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/instancer
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && instancer new-flag-key smoke >/dev/null

# Runs as root: the service talks to the Docker socket mounted by the compose file, and that
# socket is root on the engine's host anyway (see docs/operations.md, "Security").
# No HEALTHCHECK here: the compose file declares one (GET /healthz on 127.0.0.1:8000).
EXPOSE 8000
CMD ["instancer", "serve", "--host", "0.0.0.0", "--port", "8000"]
