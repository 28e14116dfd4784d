// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "splicegate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "splicegate", targets: ["splicegate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The admin API client that `splicegate ctl` uses, generated from openapi/openapi.yaml.
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-openapi-urlsession.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // The cluster's shared configuration and membership (`--cluster-db`).
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // TLS to that database (postgres-nio's own TLS is NIOSSL).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .systemLibrary(
            name: "CJansson",
            pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]
        ),
        .target(
            name: "SpliceCore"
        ),
        .target(
            name: "SpliceCapture"
        ),
        .systemLibrary(name: "CSpliceLinux"),
        .target(
            name: "SpliceIO",
            dependencies: [
                "CSpliceLinux",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: relaySettings
        ),
        .target(
            name: "SpliceDataPlane",
            dependencies: [
                "SpliceCore",
                "SpliceCapture",
                "SpliceIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: relaySettings
        ),
        // HTTP/1.1 requests to the other nodes of a cluster (forwarding, listing, events).
        .target(
            name: "SplicePeerClient",
            dependencies: [
                "SpliceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "SpliceControlPlane",
            dependencies: [
                "SpliceCore",
                "SpliceDataPlane",
                "CMicroHTTPD",
                "CJansson",
                "SplicePeerClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `--cluster-db`: listeners, mediators and membership kept in PostgreSQL.
        .target(
            name: "SpliceCluster",
            dependencies: [
                "SpliceCore",
                "SpliceDataPlane",
                "SpliceControlPlane",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // `--handoff-socket` / `--take-over`: hands live sessions to a new process (issue 15).
        .target(
            name: "SpliceHandoff",
            dependencies: [
                "CSpliceLinux",
                "SpliceCore",
                "SpliceDataPlane",
                "SpliceControlPlane",
                .product(name: "Logging", package: "swift-log"),
                // SHA-256 of the admin token (`AdminTokenCheck`).
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "SpliceSamples",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // `splicegate ctl`: the operator's command line, on the admin API client that the
        // generator's build plugin makes from openapi/openapi.yaml (linked into the target).
        .target(
            name: "SpliceCtl",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIURLSession", package: "swift-openapi-urlsession"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        .executableTarget(
            name: "splicegate",
            dependencies: [
                "SpliceCtl",
                "SpliceSamples",
                "SpliceCore",
                "SpliceDataPlane",
                "SpliceControlPlane",
                "SpliceCluster",
                "SpliceHandoff",
                "SplicePeerClient",
                "SpliceIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "SpliceTestSupport",
            dependencies: [
                "SpliceIO",
                "SpliceCapture",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SpliceTestSupport"
        ),
        .testTarget(name: "SpliceCoreTests", dependencies: ["SpliceCore"]),
        .testTarget(name: "SpliceCaptureTests", dependencies: ["SpliceCapture", "SpliceTestSupport"]),
        .testTarget(
            name: "SpliceIOTests",
            dependencies: [
                "SpliceIO", "SpliceTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "SpliceSamplesTests", dependencies: ["SpliceSamples", "SpliceTestSupport"]),
        .testTarget(
            name: "SpliceDataPlaneTests",
            dependencies: [
                "SpliceDataPlane", "SpliceCore", "SpliceIO", "SpliceTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SpliceHandoffTests",
            dependencies: ["SpliceHandoff", "SpliceCore", "SpliceDataPlane", "SpliceControlPlane", "CSpliceLinux"]
        ),
        .testTarget(name: "SpliceClusterTests", dependencies: ["SpliceCluster", "SpliceCore"]),
        .testTarget(
            name: "SpliceControlPlaneTests",
            dependencies: ["SpliceControlPlane", "SpliceDataPlane", "SpliceIO", "SplicePeerClient", "SpliceTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The relay's modules drop the run-time exclusivity checks in release builds: each access
// to a class's stored property went through swift_beginAccess and a thread-local access
// set, about 2 % of a short session's CPU (bench/results/PROFILE.md). Debug builds, which
// every test runs, keep the checks, so a violation still fails there.
var relaySettings: [SwiftSetting] {
    [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
}
