# Jaeger v2 all-in-one (in-memory storage): OTLP on 4317/4318, query API and
# UI on 16686, listening on every interface of the container.
ARG BASE
FROM ${BASE}
COPY jaeger /usr/local/bin/jaeger
ENV JAEGER_LISTEN_HOST=0.0.0.0
USER 10001:10001
EXPOSE 4317 4318 16686
ENTRYPOINT ["/usr/local/bin/jaeger"]
