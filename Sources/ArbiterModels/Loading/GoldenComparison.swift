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
    static let inputDatasets: Set<String> = ["input_ids", "pixel_values"]

    /// The hook name a golden dataset holds.
    public static func hookName(forDataset name: String) -> String { datasetToHook[name] ?? name }
    /// The dataset name a hook is stored under in the golden layout.
    public static func datasetName(forHook hook: String) -> String {
        datasetToHook.first { $0.value == hook }?.key ?? hook
    }

    /// Runs `model` on the golden inputs (ids, and pixel values for LLaVA) caching every hook the file holds,
    /// and compares. The label of each report names model, case and hook (hence layer).
    public static func run(model: any ArbiterModel, golden: GoldenActivations,
                           tolerance: Tolerance = float32) throws -> [ComparisonReport] {
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
        default:
            let output = try model.decoder.forward(ids: ids, logits: .all, hooks: hooks)
            _ = output
        }
        return try datasets.map { name in
            let reference = try golden.tensor(name)
            guard let actual = hooks.cache[hookName(forDataset: name)] else {
                throw ModelError.invalidInput("\(golden.url.lastPathComponent): the run produced no '\(name)'")
            }
            return compare(actual, to: reference, tolerance: tolerance,
                           label: "\(golden.modelID)/\(golden.caseName) \(name)")
        }
    }
}
