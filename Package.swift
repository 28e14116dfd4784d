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
            name: "SpliceDataPlane",
            dependencies: [
                "SpliceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "SpliceControlPlane",
            dependencies: [
                "SpliceCore",
                "SpliceDataPlane",
                "CMicroHTTPD",
                "CJansson",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "splicegate",
            dependencies: [
                "SpliceCore",
                "SpliceDataPlane",
                "SpliceControlPlane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "SpliceTestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SpliceTestSupport"
        ),
        .testTarget(name: "SpliceCoreTests", dependencies: ["SpliceCore"]),
        .testTarget(
            name: "SpliceDataPlaneTests",
            dependencies: [
                "SpliceDataPlane", "SpliceCore", "SpliceTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SpliceControlPlaneTests",
            dependencies: ["SpliceControlPlane", "SpliceDataPlane", "SpliceTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
