// swift-tools-version:6.0
import PackageDescription

// One place for settings that apply to every Swift target.
let swiftSettings: [SwiftSetting] = []

func library(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: deps, swiftSettings: swiftSettings)
}

func executable(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: deps, path: "Sources/Executables/\(name)",
                      swiftSettings: swiftSettings)
}

func tests(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .testTarget(name: name, dependencies: deps, swiftSettings: swiftSettings)
}

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let yams: Target.Dependency = .product(name: "Yams", package: "Yams")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")

let package = Package(
    name: "FederatedIntelligence",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fi", targets: ["fi"]),
        .executable(name: "cluster-manager", targets: ["cluster-manager"]),
        .executable(name: "aggregator", targets: ["aggregator"]),
        .executable(name: "device-worker", targets: ["device-worker"]),
        .executable(name: "inference-router", targets: ["inference-router"]),
        .executable(name: "stage-node", targets: ["stage-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        // X25519, HKDF, ChaCha20(-Poly1305) for secure aggregation (a fixed-version package on this machine).
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
    ],
    targets: [
        // C libraries from Debian (scripts/bootstrap installs them).
        .systemLibrary(name: "CZMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // protoc-c output of proto/fi.proto (scripts/gen-proto regenerates it).
        .target(name: "CMessages", linkerSettings: [.linkedLibrary("protobuf-c")]),

        // Layers (DESIGN.md): wire, bus, pure logic, then services.
        library("Messages", ["CMessages"]),
        library("Bus", ["CZMQ", "Messages", logging]),
        library("Randomness", []),
        // Quantized weight kernels (AVX2/FMA/F16C chosen at run time, portable C otherwise).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        library("Engine", ["COpenBLAS", "CKernels", "Randomness"]),
        library("Tokenizers", []),
        library("Data", ["Randomness"]),
        library("EdgeEnvironment", [yams, "Randomness"]),
        library("Federation", ["COpenBLAS", "EdgeEnvironment", "Reports", crypto]),
        // The typed experiment file (one strict parser) and what it builds.
        library("Experiments", [yams, "EdgeEnvironment", "Federation", "Engine"]),
        // Adapters and updates as messages.
        library("Wire", ["Messages", "Federation", "Engine", "EdgeEnvironment"]),
        library("ClusterManager", ["Bus", "Messages", "EdgeEnvironment"]),
        library("Aggregator", ["Bus", "Engine", "Experiments", "Federation", "Messages", "Reports", "Wire"]),
        library("DeviceWorker", ["Bus", "COpenBLAS", "Data", "EdgeEnvironment", "Engine", "Experiments", "Federation", "Messages", "Tokenizers", "Wire"]),
        // simulation: true: the round engine on the virtual clock, with the device hosts' trainers.
        library("Simulation", ["DeviceWorker", "EdgeEnvironment", "Engine", "Experiments", "Federation", "Messages", "Reports", "Wire"]),
        // fi run: wires the three services embedded (inproc) or as processes (tcp).
        library("FederatedRun", ["Aggregator", "Bus", "CZMQ", "ClusterManager", "Data", "DeviceWorker", "Engine", "Experiments", "Messages", "Reports", "Simulation", "Wire"]),
        library("Stage", ["Bus", "EdgeEnvironment", "Engine", "Messages"]),
        library("InferenceRouter", ["Bus", "EdgeEnvironment", "Engine", "Messages", "Stage", "Tokenizers"]),
        // Network-namespace testbed and service processes (ip netns, veth, bridge, tc shaping).
        library("Testbed", ["Bus", "Messages", "Engine", "Stage", "InferenceRouter", yams]),
        library("Reports", []),
        library("Config", ["Bus", argumentParser]),

        executable("fi", ["Bus", "ClusterManager", "Config", "Data", "Engine", "Experiments", "FederatedRun", "Federation", "InferenceRouter", "Messages", "Reports", "Stage", "Testbed", "Tokenizers", "Wire", argumentParser, yams]),
        executable("cluster-manager", ["Bus", "ClusterManager", "Config", "Experiments", "Messages", argumentParser]),
        executable("aggregator", ["Aggregator", "Bus", "Config", "Engine", "Experiments", "Messages", "Wire", argumentParser]),
        executable("device-worker", ["Bus", "Config", "DeviceWorker", "Experiments", "Messages", "Wire", argumentParser]),
        executable("inference-router", ["InferenceRouter", "Stage", "Engine", "Tokenizers", "Config", argumentParser]),
        executable("stage-node", ["Stage", "Engine", "Config", argumentParser]),

        tests("MessagesTests", ["Messages"]),
        tests("BusTests", ["Bus", "Messages", logging]),
        tests("TelemetryTests", ["Bus", "Messages"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "CKernels"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        tests("DataTests", ["Data"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        tests("EdgeEnvironmentTests", ["EdgeEnvironment"]),
        tests("FederationTests", ["Federation", "EdgeEnvironment", "Reports"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        tests("ConfigTests", ["Config"]),
        tests("InferenceTests", ["Stage", "InferenceRouter", "Engine", "Bus", "Messages", "Tokenizers", "EdgeEnvironment", "Testbed"]),
        tests("TestbedTests", ["Testbed", "InferenceRouter", "Stage", "Engine", "Messages", "Bus"]),
        // compose/docker-compose.yml started without Docker: the executables from the build folder.
        tests("DeploymentTests", ["Bus", "Engine", "Data", "Messages", "Reports", yams]),
        tests("ServicesTests", ["Aggregator", "Bus", "ClusterManager", "Data", "DeviceWorker", "EdgeEnvironment", "Engine", "Experiments", "FederatedRun", "Federation", "InferenceRouter", "Messages", "Reports", "Simulation", "Stage", "Wire"]),
    ]
)
