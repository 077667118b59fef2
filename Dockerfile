# syntax=docker/dockerfile:1
# Build stage: a virtualenv with mongo-streamer (the distribution; its package and command
# are `streamer`) and its pinned dependencies (wheels only need pip).
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# The runtime dependencies, pinned and hash-checked (requirements.txt; `make lock`).
COPY requirements.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt
# mongo-streamer alone; its wheel carries the default configuration and schema (config/) as
# package data. mongosim, the test server, is a separate distribution and stays out.
# Its build backend is pinned and hash-checked too (requirements-build.txt, `make lock`),
# in a virtualenv of its own, and the wheel is built without build isolation, so nothing
# unpinned is fetched to build it.
COPY requirements-build.txt ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.txt
COPY pyproject.toml README.md ./
COPY streamer/ streamer/
COPY config/ config/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation -w /tmp/wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl

# Final stage: the virtualenv, a non-root user, no compilers.
FROM python:3.11.10-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin streamer
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001
EXPOSE 8080
ENTRYPOINT ["streamer"]
CMD ["run"]
