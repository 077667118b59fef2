# syntax=docker/dockerfile:1
# Build stage: a virtualenv with streamer and its dependencies (wheels only need pip).
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY streamer/ streamer/
RUN /opt/venv/bin/pip install --no-cache-dir .

# Final stage: the virtualenv and the default configuration, a non-root user, no compilers.
FROM python:3.11.10-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin streamer
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config/ config/
USER 10001
EXPOSE 8080
ENTRYPOINT ["streamer"]
CMD ["run"]
