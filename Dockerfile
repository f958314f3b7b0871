# syntax=docker/dockerfile:1

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: compilers live here only, for a dependency without a wheel
# for the target platform.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/hookstream
ENV PATH=/opt/hookstream/bin:$PATH

WORKDIR /src
COPY . .
RUN pip install .


# Runtime stage: the interpreter, the virtualenv and nothing else.
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
RUN groupadd --system --gid ${UID} hookstream \
 && useradd --system --uid ${UID} --gid hookstream --no-create-home \
        --home-dir /var/lib/hookstream --shell /usr/sbin/nologin hookstream \
 && install -d -o hookstream -g hookstream -m 0750 /var/lib/hookstream \
 && install -d -m 0755 /etc/hookstream

COPY --from=build /opt/hookstream /opt/hookstream

ENV PATH=/opt/hookstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOOKSTREAM_DATA_DIR=/var/lib/hookstream

USER ${UID}:${UID}
WORKDIR /var/lib/hookstream
VOLUME ["/var/lib/hookstream"]

# 8080: ingress HTTP and metrics; 6066: worker metrics and health.
EXPOSE 8080 6066

ENTRYPOINT ["hookstream"]
CMD ["--help"]
