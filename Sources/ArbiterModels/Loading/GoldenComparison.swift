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
    static let inputDatasets: Set<String> = ["input_ids", "pixel_values", "image_grid_thw", "position_ids"]

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
        switch model {
        case let llava as LlavaModel:
            var pixels: Tensor? = nil
            if golden.contains("pixel_values") {
                let p = try golden.tensor("pixel_values")
                pixels = p.rank == 4 && p.shape[0] == 1 ? p.reshaped(Array(p.shape.dropFirst())) : p
            }
            _ = try llava.forward(ids: ids, pixelValues: pixels, logits: .all, hooks: hooks)
        case let qwen as QwenVLModel:
            return try runQwenVL(qwen, golden: golden, ids: ids, hooks: hooks, datasets: datasets, tolerance: tolerance)
        default:
            let output = try model.decoder.forward(ids: ids, logits: .all, hooks: hooks)
            _ = output
        }
        return try compareCached(hooks: hooks, golden: golden, datasets: datasets, tolerance: tolerance)
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

    /// Qwen2(.5)-VL: pixel patches `[N, C·T·P·P]` and `image_grid_thw` `[images, 3]` are inputs; the 3-D
    /// `position_ids` `[3, T]` are compared exactly with `QwenVLModel.positionIDs`.
    static func runQwenVL(_ model: QwenVLModel, golden: GoldenActivations, ids: [Int], hooks: HookRun,
                          datasets: [String], tolerance: Tolerance) throws -> [ComparisonReport] {
        var grids: [VisionGrid] = []
        var pixels: Tensor? = nil
        if golden.contains("pixel_values") {
            pixels = try golden.tensor("pixel_values")
            let (shape, values) = try golden.integers("image_grid_thw")
            guard shape.count == 2, shape[1] == 3 else {
                throw FormatError(.inconsistent, file: golden.url, "'image_grid_thw' has shape \(shape), expected [images, 3]")
            }
            grids = (0..<shape[0]).map { VisionGrid(t: values[3 * $0], h: values[3 * $0 + 1], w: values[3 * $0 + 2]) }
        }
        _ = try model.forward(ids: ids, pixelValues: pixels, grids: grids, logits: .all, hooks: hooks)
        var reports = try compareCached(hooks: hooks, golden: golden, datasets: datasets, tolerance: tolerance)
        if golden.integerNames.contains("position_ids") {
            let (shape, values) = try golden.integers("position_ids")
            let positions = pixels == nil ? PositionIDs.sequential(ids.count) : try model.positionIDs(ids: ids, grids: grids)
            let axes = positions.axes.count == 3 ? positions.axes : Array(repeating: positions.axes[0], count: 3)
            let actual = Tensor(shape: [3, ids.count], scalars: axes.flatMap { $0.map(Float.init) })
            let reference = Tensor(shape: shape, scalars: values.map { Float($0) })
            reports.append(compare(actual, to: reference, tolerance: Tolerance(atol: 0, rtol: 0, nmse: 0, reason: "integer positions are exact"),
                                   label: "\(golden.modelID)/\(golden.caseName) position_ids"))
        }
        return reports
    }
}
