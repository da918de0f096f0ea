// Running a model on a golden file's inputs and comparing every stored activation with Arbiter's.
// Used by the parity tests and by `arbiter compare` (regression-testing kernel changes).
import ArbiterFormats
import ArbiterTensor
import Foundation

public enum GoldenComparison {
    /// Tolerance against transformers in float32. Sums are accumulated in a different order (OpenBLAS vs
    /// torch's GEMM blocking, per-head GEMMs), so each op adds ~1e-7 relative noise, amplified by the
    /// layers: the bundled tiny checkpoints (weights std 0.2, residuals up to ~35) measure at most 2e-5
    /// relative (tiny-llama/random-40, layer 2, 6 of 2560 elements). Hence atol 1e-4 plus rtol 5e-5; the
    /// NMSE bound of 1e-8 (measured ≤ 1e-11) is what catches systematic errors.
    public static let float32 = Tolerance(atol: 1e-4, rtol: 5e-5, nmse: 1e-8,
                                          reason: "float32 vs transformers eager, different summation order")

    /// Dataset names that are not hook names.
    static let datasetToHook: [String: String] = [
        "logits": "hook_logits",
        "image_features": "hook_image_features",
    ]
    /// Datasets that are inputs, not activations.
    /// (Integer datasets — `input_ids`, a family's integer inputs such as `image_grid_thw` — are never hook
    /// names: `GoldenActivations.hookNames` holds the floating-point datasets only.)
    static let inputDatasets: Set<String> = ["pixel_values"]

    /// The hook name a golden dataset holds.
    public static func hookName(forDataset name: String) -> String { datasetToHook[name] ?? name }
    /// The dataset name a hook is stored under in the golden layout.
    public static func datasetName(forHook hook: String) -> String {
        datasetToHook.first { $0.value == hook }?.key ?? hook
    }

    /// Runs `model` on the golden inputs (ids, and pixel values for LLaVA) caching every hook the file holds,
    /// and compares. The label of each report names model, case and hook (hence layer). Every error names the
    /// golden file: a `FormatError` about it as it is, any other (unknown hook, ids the model refuses, …) as
    /// a `FormatError(.inconsistent)` of the file carrying the original message. A held-out item file
    /// (`GoldenActivations.isItemSet`) is refused as `.unsupported`: it is not one forward pass.
    public static func run(model: any ArbiterModel, golden: GoldenActivations,
                           tolerance: Tolerance = float32) throws -> [ComparisonReport] {
        guard !golden.isItemSet else {
            let items = GoldenActivations.itemOffsetsName
            throw FormatError(.unsupported, file: golden.url, "a held-out item file ('\(items)' splits its input_ids "
                              + "into items), not one forward pass; it is checked item by item against its dataset"
                              + "\(golden.itemDataset.map { " \($0)" } ?? "") (BundledGoldenTests)")
        }
        do {
            return try runPass(model: model, golden: golden, tolerance: tolerance)
        } catch let error as FormatError where error.file == golden.url.path {
            throw error
        } catch {
            throw FormatError(.inconsistent, file: golden.url, "\(error)")
        }
    }

    static func runPass(model: any ArbiterModel, golden: GoldenActivations,
                        tolerance: Tolerance) throws -> [ComparisonReport] {
        let ids = try golden.inputIDs()
        let datasets = golden.hookNames.filter { !inputDatasets.contains($0) }
        let hooks = HookRun(cache: .names(Set(datasets.map(hookName(forDataset:)))))
        try hooks.validate(against: model.hookNames, model: model.identifier)
        let image = try model.images?.goldenImage(golden)
        _ = try model.forward(ids: ids, image: image, logits: .all, hooks: hooks)
        let checks = try model.images?.goldenChecks(golden, ids: ids, image: image) ?? []
        return try compareCached(hooks: hooks, golden: golden, datasets: datasets, tolerance: tolerance) + checks
    }

    static func compareCached(hooks: HookRun, golden: GoldenActivations, datasets: [String],
                              tolerance: Tolerance) throws -> [ComparisonReport] {
        try datasets.map { name in
            guard let actual = hooks.cache[hookName(forDataset: name)] else {
                throw FormatError(.unexpected, file: golden.url,
                                  "dataset '\(name)': the run produced no such activation")
            }
            // The declared shape is checked against the computed one before the reference is read.
            let reference = try golden.tensor(name, expectedShape: actual.shape)
            return compare(actual, to: reference, tolerance: tolerance,
                           label: "\(golden.modelID)/\(golden.caseName) \(name)")
        }
    }
}
