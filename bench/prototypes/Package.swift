// swift-tools-version:6.1
// The two smallest relays issue 12 asks for before the product moves off NIO's channels:
// one on epoll with a per-loop scratch buffer, one on io_uring with provided buffers.
// Built by bench/run (`--only` … with targets proto-epoll, proto-uring); never by `make test`.
import PackageDescription

let package = Package(
    name: "relay-prototypes",
    targets: [
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CLinux"),
        .target(name: "ProtoSupport", dependencies: ["CLinux"]),
        .executableTarget(name: "proto-epoll", dependencies: ["ProtoSupport", "CLinux"], path: "Sources/ProtoEpoll"),
        .executableTarget(name: "proto-uring", dependencies: ["ProtoSupport", "CURing"], path: "Sources/ProtoUring"),
    ],
    swiftLanguageModes: [.v6]
)
