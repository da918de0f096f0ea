// Shared CLI plumbing: parsing id lists, loading models with readable errors, peak memory.
import ArbiterModels
import ArgumentParser
import Foundation

/// Parses "1,2,3" (spaces allowed) into ids.
func parseIDs(_ text: String) throws -> [Int] {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == " " })
    var ids: [Int] = []
    for p in parts {
        guard let v = Int(p) else { throw ValidationError("--ids: '\(p)' is not an integer (want e.g. 1,2,3)") }
        ids.append(v)
    }
    guard !ids.isEmpty else { throw ValidationError("--ids: no token ids given") }
    return ids
}

/// Loads a model folder; any error is printed as one line and the command exits non-zero.
func loadModel(_ path: String) throws -> any ArbiterModel {
    do { return try ModelRegistry.load(URL(fileURLWithPath: path)) } catch {
        throw CLIError("cannot load model: \(error)")
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Peak resident set size of this process in bytes (Linux /proc/self/status VmHWM).
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Help texts shared by several commands, or built from the registry (so that a new family or layout shows up
/// without a CLI edit).
enum OptionHelp {
    static let builtinLayouts = PromptLayout.builtinNames.joined(separator: ", ")
    static let layout = "Prompt layout: a built-in name (\(builtinLayouts)) or a JSON file."
    static let layoutWithDefault = "Prompt layout: a built-in name (\(builtinLayouts)) or a JSON file (default: the "
        + "model folder's prompt_layout.json, else the model type's)."
    static let image = "PNG image (image models: "
        + "\(ModelRegistry.families.filter(\.takesImages).map(\.name).joined(separator: ", "))); with --ids, the ids "
        + "hold the image tokens already expanded."
}
