# syntax=docker/dockerfile:1
#
# Operator image: `docker build -t REGISTRY/dcs-task-operator:TAG .`
# The entrypoint is the `dcs-task-operator` binary; the Helm chart passes `controller` and its flags.

# ---- build ------------------------------------------------------------------------------------
# The crate's rust-version (MSRV); override with --build-arg RUST_VERSION=1.xx for a newer toolchain.
ARG RUST_VERSION=1.89
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io download and the target folder between builds; the binary is
# copied out in the same step because the target cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dcs-task-operator \
    && install -D -m 0755 target/release/dcs-task-operator /out/dcs-task-operator

# ---- runtime ----------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates, no shell or package manager. TLS is rustls, so
# no OpenSSL is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/dcs-task-operator /usr/local/bin/dcs-task-operator
# The distroless `nonroot` user, numeric so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dcs-task-operator"]
CMD ["controller"]
