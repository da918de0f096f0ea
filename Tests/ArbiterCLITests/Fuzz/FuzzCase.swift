// The fuzz suite's vocabulary: input kinds, a case (a valid base, one mutation, what a correct answer is), the
// folders a case runs in, and the seeded generator every random choice comes from.
import ArbiterData
import ArbiterTensor
import Foundation

enum InputKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case safetensors
    case config = "config.json"
    case preprocessor = "preprocessor_config.json"
    case tokenizer = "tokenizer.json"
    case png = "PNG image"
    case layout = "prompt layout"
    case dataset
    case hdf5 = "HDF5 golden"
    case options = "CLI options"

    var description: String { rawValue }
}

/// What a correct answer to a case is.
struct Expectation: Sendable {
    enum Success: Sendable {
        /// Exit 0 is wrong: the input is bad.
        case none
        /// Exit 0 only with exactly the unmutated base's output (the mutation keeps the meaning).
        case baseline
        /// Any exit 0 is right: the input is valid but different (a different weight, a bigger image).
        case any
        /// Exit 0 only with the base's top next tokens (the command may print more, e.g. the interventions).
        case baselineTop
    }

    /// Whether a clean refusal is a correct answer.
    var refusal: Bool
    var success: Success
    /// What a refusal's message (stderr) must name: the file, and the tensor, field, item or option when the
    /// case knows it. A file name matches as a whole name (`config.json` is not found in
    /// `preprocessor_config.json`); `a|b` accepts either (e.g. a config field, or the tensor it disagrees with).
    var naming: [String]
    /// `compare`: a FAIL line on stdout naming the mismatching tensor is a correct answer too.
    var mismatchReport = false

    static func refuse(_ naming: String...) -> Expectation { .init(refusal: true, success: .none, naming: naming) }
    static func refuseOrSame(_ naming: String...) -> Expectation {
        .init(refusal: true, success: .baseline, naming: naming)
    }
    static func refuseOrSucceed(_ naming: String...) -> Expectation {
        .init(refusal: true, success: .any, naming: naming)
    }
    static let same = Expectation(refusal: false, success: .baseline, naming: [])

    /// The same expectation also naming `more`.
    func naming(_ more: String...) -> Expectation {
        var e = self
        e.naming += more
        return e
    }
}

/// A valid input: the files it copies into a case's folder and the command that runs on them.
struct Base: Sendable {
    let id: String
    let setup: @Sendable (Workspace) throws -> [String]
}

/// One fuzz case: a base, a mutation of its files or arguments, and the expected answer.
struct FuzzCase: Sendable, CustomStringConvertible {
    /// Stable name: `kind/base/mutation` (the list of known failures refers to it).
    let id: String
    let kind: InputKind
    let base: Base
    let expectation: Expectation
    /// Seconds before the process is killed (a hang is a failure).
    var timeout: Double = 20
    let mutate: @Sendable (Workspace, inout [String]) throws -> Void

    var description: String { id }

    /// Builds the case's inputs in `workspace` and returns the arguments to run.
    func prepare(_ workspace: Workspace) throws -> [String] {
        var arguments = try base.setup(workspace)
        try mutate(workspace, &arguments)
        return arguments
    }
}

/// The folders a case runs in: `in/` holds its inputs, `cwd/` is its (empty) working directory and `tmp/` its
/// TMPDIR. Nothing may appear, change or disappear in any of them.
final class Workspace: @unchecked Sendable {
    let folder: TemporaryFolder
    var root: URL { folder.url }
    var inputs: URL { root.appendingPathComponent("in") }
    var cwd: URL { root.appendingPathComponent("cwd") }
    var tmp: URL { root.appendingPathComponent("tmp") }

    init() throws {
        folder = try TemporaryFolder()
        for sub in [inputs, cwd, tmp] {
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        }
    }

    func url(_ relative: String) -> URL { inputs.appendingPathComponent(relative) }
    func path(_ relative: String) -> String { url(relative).path }

    /// Copies a file or folder of the repository (`GoldenData/…`) to `in/<name>`.
    @discardableResult
    func copy(_ repositoryPath: String, to name: String) throws -> String {
        let destination = url(name)
        try FileManager.default.createDirectory(
            at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Repository.root.appendingPathComponent(repositoryPath), to: destination)
        return destination.path
    }

    func read(_ relative: String) throws -> Data { try Data(contentsOf: url(relative)) }

    func write(_ relative: String, _ data: Data) throws {
        let destination = url(relative)
        try FileManager.default.createDirectory(
            at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: destination)
        try data.write(to: destination)
    }

    func write(_ relative: String, text: String) throws { try write(relative, Data(text.utf8)) }

    func editJSON(_ relative: String, _ edit: (FuzzJSON) throws -> FuzzJSON) throws {
        try write(relative, try edit(try FuzzJSON.parse(read(relative))).data)
    }

    func editBytes(_ relative: String, _ edit: (inout [UInt8]) throws -> Void) throws {
        var bytes = [UInt8](try read(relative))
        try edit(&bytes)
        try write(relative, Data(bytes))
    }

    func remove(_ relative: String) throws { try FileManager.default.removeItem(at: url(relative)) }

    /// Replaces the file by a named pipe (nothing ever writes to it: a reader that opens it blocks).
    func makeFIFO(_ relative: String) throws {
        try? remove(relative)
        guard mkfifo(path(relative), 0o644) == 0 else { throw FuzzSetupError("mkfifo \(relative) failed") }
    }

    /// Replaces the file by an empty folder.
    func makeFolder(_ relative: String) throws {
        try? remove(relative)
        try FileManager.default.createDirectory(at: url(relative), withIntermediateDirectories: true)
    }

    /// Replaces the file by a symbolic link to `target`.
    func makeLink(_ relative: String, to target: String) throws {
        try? remove(relative)
        try FileManager.default.createSymbolicLink(atPath: path(relative), withDestinationPath: target)
    }

    /// Every entry of the three folders (a case must leave them as it found them).
    func snapshot() throws -> [String: String] { try folder.snapshot() }
}

struct FuzzSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The seeded source of every random choice (SplitMix64), so the case list is the same on every run.
struct FuzzRandom {
    var generator: SplitMix64

    /// Seeded from a name (FNV-1a), so a base's choices do not move when cases are added elsewhere.
    init(_ name: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        generator = SplitMix64(seed: h)
    }

    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(generator.next() % UInt64(range.count)) }

    mutating func pick<T>(_ values: [T]) -> T { values[int(0..<values.count)] }
}

extension Array where Element == UInt8 {
    func uint64(at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * UInt64($1)) }
    }

    mutating func setUInt64(_ value: UInt64, at offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
}
