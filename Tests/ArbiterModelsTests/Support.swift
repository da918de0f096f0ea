// Test support: where the repository's golden data lives, temporary folders, checkpoint surgery.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

enum Repository {
    /// The package root (two levels above this file's folder).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let goldenData = root.appendingPathComponent("GoldenData")
    static let models = goldenData.appendingPathComponent("models")
    static let activations = goldenData.appendingPathComponent("activations")

    static func model(_ id: String) -> URL { models.appendingPathComponent(id) }

    /// Every golden activation file, as "model/case" paths relative to `activations` (listing only).
    static func goldenFiles() -> [String] {
        let e = FileManager.default.enumerator(at: activations, includingPropertiesForKeys: nil)
        // `heldout.h5` files hold many items of a bundled model (their own layout; BundledGoldenTests).
        let files = (e?.compactMap { $0 as? URL } ?? []).filter { $0.pathExtension == "h5" && $0.lastPathComponent != "heldout.h5" }
        return files.map { $0.path.replacingOccurrences(of: activations.path + "/", with: "") }.sorted()
    }
}

/// A temporary folder removed when the value is deinitialized.
final class TemporaryFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    /// Copies a bundled model folder here (config and checkpoint) and returns the copy's URL.
    func copyModel(_ id: String, as name: String? = nil) throws -> URL {
        let destination = url.appendingPathComponent(name ?? id)
        try FileManager.default.copyItem(at: Repository.model(id), to: destination)
        return destination
    }
}

/// Reads a model folder's tensors as Float32, keyed by name.
func floatTensors(of folder: URL) throws -> [String: Tensor] {
    let file = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
    return file.tensors.mapValues { $0.toTensor() }
}

/// Rewrites `config.json` of a model folder through a JSON edit.
func editConfig(_ folder: URL, _ edit: (inout [String: Any]) -> Void) throws {
    let url = folder.appendingPathComponent("config.json")
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]).write(to: url)
}

/// Rewrites `config.json` of a model folder with the value at `path` (keys from the top) replaced by the raw
/// JSON text `literal`, which JSONSerialization could not write as such (`2.0`, `1e9`, huge integers).
func editConfig(_ folder: URL, path: [String], literal: String) throws {
    let sentinel = "@@arbiter-literal@@"
    try editConfig(folder) { object in
        func set(_ object: inout [String: Any], _ keys: ArraySlice<String>) {
            guard let key = keys.first else { return }
            if keys.count == 1 { object[key] = sentinel; return }
            var child = object[key] as? [String: Any] ?? [:]
            set(&child, keys.dropFirst())
            object[key] = child
        }
        set(&object, path[...])
    }
    let url = folder.appendingPathComponent("config.json")
    let text = try String(contentsOf: url, encoding: .utf8)
    try Data(text.replacingOccurrences(of: "\"\(sentinel)\"", with: literal).utf8).write(to: url)
}

/// Loads a copy of the bundled model `id` whose config.json holds `literal` at `path`; returns the error the
/// load throws (nil when it loads).
func loadError(_ id: String, editing path: [String], to literal: String) throws -> (any Error)? {
    let tmp = try TemporaryFolder()
    let folder = try tmp.copyModel(id)
    try editConfig(folder, path: path, literal: literal)
    do {
        _ = try ModelRegistry.load(folder)
        return nil
    } catch {
        return error
    }
}

/// A prepared LLaVA input against transformers' golden run of the same PNG and prompt: the same ids, the same
/// pixel values (the PIL bicubic path is reproduced in integer arithmetic: the same uint8 pixels, so float32
/// equality up to the normalisation's rounding), and the same logits within the float32 tolerance.
func expectMatchesGolden(_ session: ModelSession, _ input: PreparedInput, _ golden: GoldenActivations, label: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(input.ids == (try golden.inputIDs()), sourceLocation: sourceLocation)
    let pixels = try #require(input.pixelValues, sourceLocation: sourceLocation)
    let sameBytes = Tolerance(atol: 1e-5, nmse: 1e-12, reason: "same uint8 pixels; float32 normalisation")
    let report = compare(pixels.reshaped([1] + pixels.shape), to: try golden.tensor("pixel_values"),
                         tolerance: sameBytes, label: "\(label) pixel_values")
    #expect(report.passed, "\(report)", sourceLocation: sourceLocation)
    let hooks = HookRun(cache: .names(["hook_logits"]))
    _ = try session.run(input, logits: .all, hooks: hooks)
    let logits = compare(try #require(hooks.cache["hook_logits"], sourceLocation: sourceLocation),
                         to: try golden.tensor("logits"), tolerance: GoldenComparison.float32,
                         label: "\(label) logits from PNG")
    #expect(logits.passed, "\(logits)", sourceLocation: sourceLocation)
}
