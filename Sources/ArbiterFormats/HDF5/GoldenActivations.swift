// Golden activation files (GoldenData/README.md, format version 2): one forward pass of one model on one
// input, written by Tools/golden.py from transformers or by `arbiter run --dump`; read back hook by hook.
// Version 2 adds the content digests (HDF5ContentDigests), checked when a file is opened.
import ArbiterTensor
import Foundation

/// A golden activation file: root attributes describing the run, one dataset per hook point.
public final class GoldenActivations: @unchecked Sendable {  // immutable after init; HDF5Reader is thread-safe
    /// The layout version this code reads and writes.
    public static let formatVersion = 2
    /// The dataset holding the token ids.
    public static let inputIDsName = "input_ids"
    /// The integer dataset that marks a held-out item file (GoldenData/README.md: many items' prompts
    /// concatenated in `input_ids`, item `i` at `input_ids[item_offsets[i] ..< item_offsets[i + 1]]`).
    public static let itemOffsetsName = "item_offsets"
    /// Most tokens a golden file may declare in `input_ids` (checked from the declared shape, before anything is
    /// read). A golden file is one forward pass, or a few hundred held-out prompts (GoldenData's hold 8167
    /// tokens): a million tokens is far past any of them, and past what one pass of any supported model can hold.
    public static let maximumTokens = 1 << 20
    static let regenerateHint = "regenerate with `make goldens`"

    public let url: URL
    public let modelID: String
    public let modelType: String
    public let source: String
    public let seed: Int
    public let caseName: String
    public let prompt: String?
    /// The floating-point datasets, sorted: hook names, plus `pixel_values` and `image_features` for LLaVA.
    public let hookNames: [String]
    /// The integer datasets, sorted: `input_ids`, and metadata such as Qwen2-VL's `image_grid_thw`.
    public let integerNames: [String]
    /// Number of tokens `T` (length of `input_ids`).
    public let tokenCount: Int
    /// Whether the file holds held-out items (an `item_offsets` dataset) rather than one forward pass: its
    /// `input_ids` are several prompts and its datasets are per item (`logits_last`), not per hook.
    public let isItemSet: Bool
    /// The `dataset` root attribute of a held-out item file: the folder of the items it was computed on.
    public let itemDataset: String?
    private let reader: HDF5Reader
    /// The content digests recorded when the file was written, checked as datasets are read.
    private let contentDigests: HDF5ContentDigests.Record

    /// Opens and checks a golden file: version, required attributes, and a rank-1 integer `input_ids`.
    public init(url: URL) throws {
        let reader = try HDF5Reader(url: url)
        self.url = url
        self.reader = reader
        guard reader.hasAttribute("format_version") else {
            throw FormatError(.missing, file: url,
                              "no root attribute 'format_version': not a golden activation file (version "
                              + "\(Self.formatVersion) expected); \(Self.regenerateHint)")
        }
        let version = try reader.intAttribute("format_version")
        guard version == Self.formatVersion else {
            let upgrade = version == 1 ? " (or, for a version-1 file known intact, add its content digests: "
                + "`python Tools/content_digests.py upgrade FILE`)" : ""
            throw FormatError(.unsupported, file: url,
                              "golden format_version \(version) is not supported (this Arbiter reads version "
                              + "\(Self.formatVersion)); \(Self.regenerateHint)\(upgrade)")
        }
        func required(_ name: String) throws -> String {
            guard reader.hasAttribute(name) else {
                throw FormatError(.missing, file: url,
                                  "golden file lacks root attribute '\(name)'; \(Self.regenerateHint)")
            }
            return try reader.stringAttribute(name)
        }
        modelID = try required("model_id")
        modelType = try required("model_type")
        source = try required("source")
        caseName = try required("case")
        guard reader.hasAttribute("seed") else {
            throw FormatError(.missing, file: url, "golden file lacks root attribute 'seed'; \(Self.regenerateHint)")
        }
        seed = try reader.intAttribute("seed")
        prompt = reader.hasAttribute("prompt") ? try reader.stringAttribute("prompt") : nil

        let names = try reader.datasetNames()
        guard names.contains(Self.inputIDsName) else {
            throw FormatError(.missing, file: url,
                              "golden file has no '\(Self.inputIDsName)' dataset; \(Self.regenerateHint)")
        }
        let floating = try names.filter { try reader.isFloatingPoint($0) }
        hookNames = floating
        integerNames = names.filter { !floating.contains($0) }
        if let wrong = integerNames.first(where: Self.isFloatHook) {
            throw FormatError(.unsupported, file: url,
                              "'\(wrong)' is \(try reader.dtype(of: wrong)), expected float32; \(Self.regenerateHint)")
        }
        guard !floating.contains(Self.inputIDsName) else {
            throw FormatError(.unsupported, file: url,
                              "'\(Self.inputIDsName)' is \(try reader.dtype(of: Self.inputIDsName)), expected int64; "
                              + "\(Self.regenerateHint)")
        }
        let shape = try reader.shape(of: Self.inputIDsName)  // the declared shape: nothing is read yet
        guard shape.count == 1 else {
            throw FormatError(.inconsistent, file: url, "'\(Self.inputIDsName)' has shape \(shape), expected [T]")
        }
        guard shape[0] <= Self.maximumTokens else {
            throw FormatError(.tooLarge, file: url, "dataset '\(Self.inputIDsName)' declares \(shape[0]) tokens, over "
                              + "the \(Self.maximumTokens)-token limit of a golden file; not read")
        }
        tokenCount = shape[0]
        isItemSet = integerNames.contains(Self.itemOffsetsName)
        itemDataset = isItemSet && reader.hasAttribute("dataset") ? try reader.stringAttribute("dataset") : nil
        // Last: the content digests. Attributes, dataset names, types and shapes are checked now; each dataset's
        // values when it is read (a file may declare far more data than it holds: shapes come first).
        guard let record = try reader.recordedContentDigests() else {
            throw FormatError(.missing, file: url, "golden file lacks root attribute "
                              + "'\(HDF5ContentDigests.attributeName)' (the content digests format_version "
                              + "\(Self.formatVersion) requires); \(Self.regenerateHint)")
        }
        contentDigests = record
        try Self.regenerating { try reader.checkContentStructure(record) }
    }

    /// Adds the regenerate hint to a content digest mismatch.
    private static func regenerating<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as FormatError where error.kind == .inconsistent {
            throw FormatError(error.kind, file: error.file, "\(error.problem); \(regenerateHint)")
        }
    }

    /// Checks dataset `name`'s values against the recorded digests (reads them).
    private func checkValues(_ name: String) throws {
        try Self.regenerating { try reader.checkContentDigest(ofDataset: name, contentDigests) }
    }

    /// Whether the file holds `hook`.
    public func contains(_ hook: String) -> Bool { hookNames.contains(hook) }

    /// The shape stored for `hook`.
    public func shape(of hook: String) throws -> [Int] {
        try requireHook(hook)
        return try reader.shape(of: hook)
    }

    /// The activation stored for `hook` as Float32, checked against the layout's shape for known hooks
    /// (`[T, d]` for residual-stream hooks and logits, `[H, T, T]` for attention patterns) and against
    /// `expectedShape` when given. Both checks use the declared shape, before the data is read (a small
    /// compressed file may declare gigabytes).
    public func tensor(_ hook: String, expectedShape: [Int]? = nil) throws -> Tensor {
        try requireHook(hook)
        let shape = try reader.shape(of: hook)
        if let problem = Self.shapeProblem(hook: hook, shape: shape, tokens: tokenCount) {
            throw FormatError(.inconsistent, file: url,
                              "'\(hook)' has shape \(shape), expected \(problem); \(Self.regenerateHint)")
        }
        if let expectedShape, shape != expectedShape {
            throw FormatError(.inconsistent, file: url, "dataset '\(hook)' has shape \(shape) but the model computed "
                              + "\(expectedShape); not read")
        }
        try checkValues(hook)
        return try reader.readFloat32(hook)
    }

    /// The token ids fed to the model.
    public func inputIDs() throws -> [Int] {
        let (shape, values) = try integers(Self.inputIDsName)
        guard shape.count == 1 else {
            throw FormatError(.inconsistent, file: url, "'\(Self.inputIDsName)' has shape \(shape), expected [T]")
        }
        return values
    }

    /// An integer dataset (`input_ids`, `image_grid_thw`, …) with its shape.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        guard integerNames.contains(name) else {
            throw FormatError(.missing, file: url,
                              "no integer dataset '\(name)' in golden file\(HDF5Reader.listing(integerNames))")
        }
        try checkValues(name)
        let (shape, values) = try reader.readInt64(name)
        return (shape, values.map { Int($0) })
    }

    private func requireHook(_ hook: String) throws {
        if integerNames.contains(hook) {
            throw FormatError(.unsupported, file: url,
                              "'\(hook)' is an integer dataset, not a float32 activation; use integers(_:)")
        }
        guard hookNames.contains(hook) else {
            throw FormatError(.missing, file: url, "no hook '\(hook)' in golden file\(HDF5Reader.listing(hookNames))")
        }
    }

    /// Whether the layout defines `name` as a float32 dataset (hooks, logits, pixel values, image features).
    static func isFloatHook(_ name: String) -> Bool {
        ["hook_embed", "ln_final.hook_normalized", "logits", "pixel_values", "image_features"].contains(name)
            || name.hasPrefix("blocks.") || name.hasPrefix("vision.")
    }

    /// What shape a known hook must have given `T` tokens, or nil if `shape` fits (or the hook has no rule).
    static func shapeProblem(hook: String, shape: [Int], tokens: Int) -> String? {
        let residual = ["hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"]
        let parts = hook.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let isBlock = parts.count >= 3 && parts[0] == "blocks" && Int(parts[1]) != nil
        if hook == "hook_embed" || hook == "ln_final.hook_normalized" || hook == "logits"
            || (isBlock && parts.count == 3 && residual.contains(parts[2])) {
            return shape.count == 2 && shape[0] == tokens ? nil : "[\(tokens), *] (T = \(tokens) tokens)"
        }
        if isBlock && parts.count == 4 && parts[2] == "attn" && parts[3] == "hook_pattern" {
            return shape.count == 3 && shape[1] == tokens && shape[2] == tokens
                ? nil : "[H, \(tokens), \(tokens)] (T = \(tokens) tokens)"
        }
        return nil
    }
}

/// Writes a golden activation file (format version 2, content digests included) atomically: nothing appears until
/// `commit()`.
public final class GoldenWriter {
    private let writer: HDF5Writer
    public var url: URL { writer.url }

    public init(url: URL, modelID: String, modelType: String, source: String, seed: Int, caseName: String,
                prompt: String? = nil, output: OutputKind? = nil) throws {
        writer = try HDF5Writer(url: url, output: output)
        try writer.setAttribute("format_version", GoldenActivations.formatVersion)
        try writer.setAttribute("model_id", modelID)
        try writer.setAttribute("model_type", modelType)
        try writer.setAttribute("source", source)
        try writer.setAttribute("seed", seed)
        try writer.setAttribute("case", caseName)
        if let prompt { try writer.setAttribute("prompt", prompt) }
    }

    /// Writes the activation of one hook point (float32).
    public func write(hook: String, tensor: Tensor) throws {
        guard hook != GoldenActivations.inputIDsName else {
            throw FormatError(.unexpected, file: writer.url, "'\(hook)' is reserved for token ids; use writeInputIDs")
        }
        try writer.write(hook, tensor)
    }

    /// Writes `input_ids` (int64, `[T]`).
    public func writeInputIDs(_ ids: [Int]) throws {
        try writer.write(GoldenActivations.inputIDsName, int64: ids.map { Int64($0) }, shape: [ids.count])
    }

    /// Writes another integer dataset (int64), such as Qwen2-VL's `image_grid_thw`.
    public func writeIntegers(_ name: String, _ values: [Int], shape: [Int]) throws {
        try writer.write(name, int64: values.map { Int64($0) }, shape: shape)
    }

    /// Renames the finished file into place.
    public func commit() throws {
        try writer.commit()
    }
}
