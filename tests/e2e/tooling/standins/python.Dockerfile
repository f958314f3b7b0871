# Stand-in for python:3.11-slim-bookworm: Debian bookworm's python3 (3.11) and
# an offline wheelhouse, so `pip install .` needs no package index.
ARG BASE
FROM ${BASE}
COPY wheelhouse /opt/wheelhouse
RUN printf '[global]\nno-index = true\nfind-links = /opt/wheelhouse\n' >/etc/pip.conf
LABEL org.hookstream.e2e.stand-in="python:3.11-slim-bookworm"
CMD ["python3"]
