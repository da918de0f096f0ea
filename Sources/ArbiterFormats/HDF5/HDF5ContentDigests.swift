// Content digests of the HDF5 files Arbiter writes (GoldenData/README.md, "Content digests"). A flipped byte in
// a dataset's values passes every structural check of HDF5 (uncompressed raw data has no checksum in the
// formats h5py and Arbiter write), and a golden file whose reference values moved within tolerance would
// make `arbiter compare` answer "ok" about a file that is not what was stored. So every file Arbiter or
// Tools/ writes records, in its root attribute `content_digests`, one line per attribute and per root dataset
// with the SHA-256 of its canonical bytes; readers of golden files recompute them and refuse any difference,
// naming what changed.
//
// The record (UTF-8 text, lines ending in "\n", entry lines sorted by their UTF-8 bytes):
//
//     arbiter-content-digests 1
//     attribute<TAB>{owner}<TAB>{name}<TAB>{string|int|float}<TAB>{digest}
//     dataset<TAB>{name}<TAB>{stored type}<TAB>{shape}<TAB>{digest}
//
// `owner` is "/" for the root group, else the dataset's name. `stored type` is the element type as stored
// (float32, float64, int64, uint8, …); `shape` is the dimensions joined by "x" ("scalar" for rank 0).
// `digest` is the first 32 hex digits (128 bits) of the SHA-256 of the canonical bytes: a string's UTF-8
// bytes; an integer as int64 little-endian; a float attribute as float64 little-endian; a dataset's elements
// in C order as float32 little-endian (float16 and float32 storage), float64 little-endian (float64) or int64
// little-endian (any integer storage). Tools/golden_capture.py computes the same record in Python.
import Foundation

public enum HDF5ContentDigests {
    /// The root attribute holding the record.
    public static let attributeName = "content_digests"
    static let header = "arbiter-content-digests 1"
    /// Largest record written: HDF5 keeps attributes in the object header (64 KiB at most in the file formats
    /// h5py and Arbiter write). About 600 datasets fit; a file with more is refused when written.
    static let maximumRecordBytes = 60_000

    /// An attribute's value.
    public enum Value: Equatable, Sendable {
        case string(String)
        case int(Int64)
        case double(Double)
    }

    /// One attribute or root dataset, as it is now or as it was written.
    enum Entry {
        case attribute(owner: String?, name: String, value: Value)
        /// `digest` nil: the values were not read (names, types and shapes are checked, not values).
        case dataset(name: String, type: String, shape: [Int], digest: [UInt8]?)

        /// What the entry describes (its line without the digest).
        var key: String {
            switch self {
            case .attribute(let owner, let name, let value):
                let kind: String
                switch value {
                case .string: kind = "string"
                case .int: kind = "int"
                case .double: kind = "float"
                }
                return "attribute\t\(owner ?? "/")\t\(name)\t\(kind)"
            case .dataset(let name, let type, let shape, _):
                let dims = shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
                return "dataset\t\(name)\t\(type)\t\(dims)"
            }
        }

        var line: String { "\(key)\t\(digest.map(HDF5ContentDigests.hex) ?? "-")" }

        var digest: [UInt8]? {
            switch self {
            case .attribute(_, _, let value):
                switch value {
                case .string(let s): return SHA256.hash(Array(s.utf8))
                case .int(let v): return SHA256.hash(withUnsafeBytes(of: v.littleEndian) { Array($0) })
                case .double(let v): return SHA256.hash(withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) })
                }
            case .dataset(_, _, _, let digest): return digest
            }
        }

        /// How an error names it.
        var label: String {
            switch self {
            case .attribute(let owner, let name, let value):
                var s = "attribute '\(name)' of \(owner.map { "dataset '\($0)'" } ?? "the root group")"
                if case .string(let text) = value, text.count <= 60, !text.contains("\n") { s += " (now '\(text)')" }
                else if case .int(let v) = value { s += " (now \(v))" }
                return s
            case .dataset(let name, let type, let shape, _): return "dataset '\(name)' (\(type) \(shape))"
            }
        }
    }

    /// First 32 hex digits of a SHA-256 digest.
    static func hex(_ digest: [UInt8]) -> String {
        digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// The record of `entries`.
    static func record(_ entries: [Entry]) -> String {
        let lines = entries.map(\.line).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return ([header] + lines).map { $0 + "\n" }.joined()
    }

    /// A record read back from a file: its lines by key (the line without its digest).
    public struct Record: Sendable {
        let lines: [String: String]
        let unreadable: [String]

        /// Parses `text`; throws `.malformed` when it is not a record of this version.
        init(_ text: String, file: URL) throws {
            var all = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if all.last == "" { all.removeLast() }
            guard all.first == HDF5ContentDigests.header else {
                throw FormatError(.malformed, file: file, "root attribute '\(attributeName)' does not start with "
                                  + "'\(HDF5ContentDigests.header)': its content digests cannot be read (corrupt, or "
                                  + "written by a newer Arbiter)")
            }
            var lines: [String: String] = [:]
            var unreadable: [String] = []
            for line in all.dropFirst() {
                guard let cut = line.lastIndex(of: "\t"), line.split(separator: "\t").count == 5 else {
                    unreadable.append(line)
                    continue
                }
                lines[String(line[..<cut])] = line
            }
            self.lines = lines
            self.unreadable = unreadable
        }
    }

    /// Throws, naming up to four differences, unless `current` is exactly what `record` says was written.
    /// `complete`: `current` is every entry of the file (else only those given are compared, e.g. one dataset).
    /// Datasets whose values were not read (digest nil) are compared by name, type and shape.
    static func compare(_ record: Record, current: [Entry], complete: Bool, file: URL) throws {
        var problems: [String] = []
        var seen: Set<String> = []
        for entry in current.sorted(by: { $0.key < $1.key }) {
            seen.insert(entry.key)
            guard let line = record.lines[entry.key] else {
                problems.append("\(entry.label) was not in the file when it was written")
                continue
            }
            if entry.digest != nil, line != entry.line {
                problems.append("\(entry.label) differs from what was written")
            }
        }
        if complete {
            for key in record.lines.keys.sorted() where !seen.contains(key) {
                let fields = key.split(separator: "\t", omittingEmptySubsequences: false)
                let what = fields.first == "dataset" && fields.count > 3
                    ? "dataset '\(fields[1])' (\(fields[2]) \(fields[3]))"
                    : fields.count > 2
                    ? "attribute '\(fields[2])' of \(fields[1] == "/" ? "the root group" : "dataset '\(fields[1])'")"
                    : "'\(key)'"
                problems.append("\(what) is recorded but no longer in the file")
            }
            for line in record.unreadable { problems.append("recorded line '\(line.prefix(80))' is unreadable") }
        }
        guard problems.isEmpty else {
            let shown = problems.prefix(4).joined(separator: "; ")
            let more = problems.count > 4 ? "; … (\(problems.count) differences in all)" : ""
            throw FormatError(.inconsistent, file: file, "the content does not match the digests recorded when the "
                              + "file was written (root attribute '\(attributeName)'): \(shown)\(more); the file "
                              + "was changed after it was written (corrupt, or edited)")
        }
    }
}
