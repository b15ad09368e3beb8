# hpa-signals adapter image: a static binary on distroless, non-root.
#   make image            (or: docker build --build-arg VERSION=$(git describe --always) -t hpa-signals:dev .)
FROM golang:1.26 AS build
WORKDIR /src
# Modules in their own layer: source edits don't re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /adapter ./cmd/adapter

# distroless/static carries CA certificates and nothing else but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /adapter /adapter
USER 65532:65532
ENTRYPOINT ["/adapter"]
