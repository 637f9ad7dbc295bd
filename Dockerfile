# flowbench's binaries on a small base, as a non-root user:
#   flowbench-server (the system under test), flowbench (driver, mock, merge).
#   docker build -t flowbench:latest .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p server -p flowbench --bins

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin flowbench
COPY --from=build /src/target/release/flowbench /src/target/release/flowbench-server /usr/local/bin/
# The fixture workflows and scenario files, for configs that name them.
COPY fixtures/workflows /opt/flowbench/fixtures/workflows
COPY fixtures/scenarios /opt/flowbench/fixtures/scenarios
USER 10001
EXPOSE 5001 5004
ENTRYPOINT ["flowbench-server"]
CMD ["--config", "/config/server.toml"]
