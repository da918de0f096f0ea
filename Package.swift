// swift-tools-version: 6.1
// Arbiter: the claims of "Instruction Anchors" (arXiv 2602.03677) as executable hypotheses.
// Targets are layered; imports only flow down this list:
//   C shims (CBLAS, CHDF5, CPNG) and C kernels (CKernels) → ArbiterTensor, ArbiterJSON (no dependencies)
//   → ArbiterFormats, ArbiterTokenizers → ArbiterModels → ArbiterInterventions → ArbiterData → ArbiterAnalyses
//   → ArbiterClaims (+ ArbiterPlots) → ArbiterCLI
import PackageDescription

// No unsafe flags: release builds keep Swift's bounds and overflow checks (-O, not -Ounchecked), so input that
// slips past validation stops with a trap instead of corrupting memory, and SwiftPM accepts the package as a
// dependency (it refuses unsafeFlags there; ArbiterCLITests builds such a package). Measured in one run on this
// 2-core host, `arbiter verify` on arbiter-main (120 items): user CPU 41.7 s with -O against 39.6 s with
// -Ounchecked, medians of 3 — within the host's run-to-run noise; the hot loops are OpenBLAS and the C kernels.
let optimized: [SwiftSetting] = []

let package = Package(
    name: "Arbiter",
    products: [
        .executable(name: "arbiter", targets: ["ArbiterCLI"]),
        // `import Arbiter` brings every layer; each layer is a product of its own too.
        .library(name: "Arbiter", targets: ["Arbiter"]),
        .library(name: "ArbiterTensor", targets: ["ArbiterTensor"]),
        .library(name: "ArbiterFormats", targets: ["ArbiterFormats"]),
        .library(name: "ArbiterTokenizers", targets: ["ArbiterTokenizers"]),
        .library(name: "ArbiterModels", targets: ["ArbiterModels"]),
        .library(name: "ArbiterInterventions", targets: ["ArbiterInterventions"]),
        .library(name: "ArbiterData", targets: ["ArbiterData"]),
        .library(name: "ArbiterAnalyses", targets: ["ArbiterAnalyses"]),
        .library(name: "ArbiterClaims", targets: ["ArbiterClaims"]),
        .library(name: "ArbiterPlots", targets: ["ArbiterPlots"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // C shims: the thinnest possible module maps; only one Swift file per library imports each.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        // Elementwise kernels (exp, SiLU) in C, cloned for AVX2 and the baseline and picked at load time.
        .target(name: "CKernels", path: "Sources/CKernels"),
        // Tensors and kernels: Float32 activations, weights in their stored dtype, BLAS matmul.
        .target(name: "ArbiterTensor", dependencies: ["CBLAS", "CKernels"], swiftSettings: optimized),
        // The one strict JSON parser, under both readers of JSON (ArbiterFormats and ArbiterTokenizers); it
        // depends on nothing, so the tokenizers stay free of the C libraries (see Sources/ArbiterJSON).
        .target(name: "ArbiterJSON", swiftSettings: optimized),
        // Formats: safetensors, HDF5, PNG, Pillow resampling, JSON helpers.
        .target(name: "ArbiterFormats", dependencies: ["ArbiterTensor", "ArbiterJSON", "CHDF5", "CPNG"],
                swiftSettings: optimized),
        // tokenizer.json: one stage per file.
        .target(name: "ArbiterTokenizers", dependencies: ["ArbiterJSON"], swiftSettings: optimized),
        // Models: decoder, hook points, prompt layouts, registry, one folder per family (model, vision tower,
        // image processor, registry entry).
        .target(name: "ArbiterModels", dependencies: ["ArbiterTensor", "ArbiterFormats", "ArbiterTokenizers"],
                resources: [.copy("Prompt/Layouts"), .copy("Prompt/Schemas")], swiftSettings: optimized),
        // Causal interventions (attention knockout, head blocking/amplification, MLP scaling, patching).
        .target(name: "ArbiterInterventions", dependencies: ["ArbiterModels"], swiftSettings: optimized),
        // Conflict data: the synthetic benchmark generator (own rasteriser → PNG) and loaders for the paper's sets.
        .target(name: "ArbiterData", dependencies: ["ArbiterModels", "ArbiterFormats"], resources: [.copy("Schemas")],
                swiftSettings: optimized),
        // The paper's measurements: modality following, information flow, routing, logit lens, attribution,
        // head identification and causal head interventions. Results are plain Codable values.
        .target(name: "ArbiterAnalyses", dependencies: ["ArbiterInterventions", "ArbiterData", "ArbiterFormats"],
                swiftSettings: optimized),
        // The paper's claims as executable hypotheses: specification, statistics, verdicts.
        .target(name: "ArbiterClaims", dependencies: ["ArbiterAnalyses", "ArbiterInterventions"], swiftSettings: optimized),
        // Plots (PNG through our own rasteriser and libpng) for reports.
        .target(name: "ArbiterPlots", dependencies: ["ArbiterFormats"], swiftSettings: optimized),
        // The umbrella module of the `Arbiter` product (re-exports every layer).
        .target(name: "Arbiter", dependencies: [
            "ArbiterTensor", "ArbiterFormats", "ArbiterTokenizers", "ArbiterModels", "ArbiterInterventions",
            "ArbiterData", "ArbiterAnalyses", "ArbiterClaims", "ArbiterPlots",
        ]),
        .executableTarget(name: "ArbiterCLI", dependencies: [
            "ArbiterModels", "ArbiterInterventions", "ArbiterData", "ArbiterAnalyses", "ArbiterClaims", "ArbiterPlots",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimized),

        .testTarget(name: "ArbiterTensorTests", dependencies: [
            "ArbiterTensor", "CKernels", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "ArbiterFormatsTests", dependencies: [
            "ArbiterFormats", .product(name: "PropertyBased", package: "swift-property-based"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "ArbiterAnalysesTests", dependencies: [
            "ArbiterAnalyses", "ArbiterData", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "ArbiterPlotsTests", dependencies: ["ArbiterPlots"]),
        .testTarget(name: "ArbiterClaimsTests", dependencies: [
            "ArbiterClaims", "ArbiterAnalyses", "ArbiterFormats", "ArbiterTensor", "ArbiterModels",
            .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "ArbiterDataTests", dependencies: [
            "ArbiterData", .product(name: "PropertyBased", package: "swift-property-based"),
        ], exclude: ["Fixtures"]),
        // ArbiterTensor only for its seeded generator (SplitMix64).
        .testTarget(name: "ArbiterTokenizersTests", dependencies: ["ArbiterTokenizers", "ArbiterTensor"],
                    exclude: ["Fixtures"]),
        // The `arbiter` executable run as a subprocess (built beside the test bundle: `make test` builds it
        // first): exit statuses, messages, and the files it writes or must not touch; the fuzz suite (its
        // generators reuse ArbiterTensor's seeded generator and ArbiterFormats' PNG chunks); docs/your-model.md
        // run end to end on the own-model fixture.
        .testTarget(name: "ArbiterCLITests", dependencies: ["ArbiterTensor", "ArbiterFormats", "ArbiterData"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "ArbiterModelsTests", dependencies: [
            "ArbiterModels", "ArbiterInterventions", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
    ]
)
