// `arbiter compare`: run models on golden inputs and compare every stored activation (kernel regressions).
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import ArgumentParser
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare Arbiter's activations with golden HDF5 files from transformers.",
        discussion: "Each golden file names its model (model_id); models are looked up under --models.")

    @Option(name: .long, help: "Golden HDF5 files, or folders searched recursively for *.h5.")
    var golden: [String] = ["GoldenData/activations"]

    @Option(name: .long, help: "Folder holding the model folders named by the golden files' model_id.")
    var models: String = "GoldenData/models"

    @Flag(name: .long, help: "Print every comparison, not only failures.")
    var verbose = false

    func validate() throws {
        for g in golden { try CLIPaths.checkNotEmpty(["--golden": g]) }
        try CLIPaths.checkNotEmpty(["--models": models])
    }

    func run() throws {
        var files: [URL] = []
        for path in golden {
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CLIError("\(path): no such file or folder")
            }
            if isDirectory.boolValue {
                let found = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil)?
                    .compactMap { $0 as? URL }.filter { $0.pathExtension == "h5" } ?? []
                files += found.sorted { $0.path < $1.path }
            } else {
                files.append(url)
            }
        }
        guard !files.isEmpty else { throw CLIError("no golden files found in \(golden.joined(separator: ", "))") }
        var loaded: [String: any ArbiterModel] = [:]
        var failures = 0, total = 0, skipped = 0
        for file in files {
            let g = try GoldenActivations(url: file)
            // Held-out item files hold many prompts and per-item last-position logits: no single forward pass
            // reproduces them (BundledGoldenTests checks them item by item, from their dataset's images).
            if g.isItemSet {
                print("skip \(g.modelID)/\(g.caseName): \(file.path) is a held-out item file (per-item logits over "
                      + "\(g.itemDataset ?? "its dataset"), split by '\(GoldenActivations.itemOffsetsName)'), not a "
                      + "one-pass golden; `swift test --filter BundledGoldenTests` checks it")
                skipped += 1
                continue
            }
            let model: any ArbiterModel
            if let m = loaded[g.modelID] { model = m } else {
                do { model = try ModelRegistry.load(URL(fileURLWithPath: "\(models)/\(g.modelID)")) } catch {
                    throw CLIError("\(file.path): cannot load its model '\(g.modelID)' from \(models): \(error)")
                }
                loaded[g.modelID] = model
            }
            let reports = try GoldenComparison.run(model: model, golden: g)
            let bad = reports.filter { !$0.passed }
            failures += bad.count
            total += reports.count
            let worst = reports.max { $0.maxAbsoluteDifference < $1.maxAbsoluteDifference }
            print("\(bad.isEmpty ? "ok  " : "FAIL") \(g.modelID)/\(g.caseName): \(reports.count) tensors, "
                  + "max|Δ| \(worst.map { String(format: "%.2e", $0.maxAbsoluteDifference) } ?? "-")")
            for r in (verbose ? reports : bad) { print("     \(r)") }
        }
        let skips = skipped == 0 ? "" : ", \(skipped) file\(skipped == 1 ? "" : "s") skipped"
        print("\(total - failures) passed, \(failures) failed\(skips)")
        guard skipped < files.count else {
            throw CLIError("nothing compared: every golden file given (\(files.count)) is a held-out item file")
        }
        if failures > 0 { throw ExitCode.failure }
    }
}
