// The error every reader in ArbiterFormats throws: which file, and what is wrong with it.
import Foundation

/// A problem with an input file. `description` names the file and the problem, and a fix where one is known.
public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case unreadable         // cannot open or read the file
        case truncated          // ends before its declared content
        case malformed          // syntax or structure broken
        case unsupported        // valid but not something Arbiter reads (dtype, model type, version)
        case inconsistent       // parts disagree (shape vs byte count, overlaps, config vs weights)
        case missing            // something required is absent (tensor, key, dataset, shard)
        case unexpected         // something present that must not be (unused tensors, duplicates)
        case tooLarge           // beyond a resource cap
    }

    public let kind: Kind
    public let file: String
    public let problem: String

    public init(_ kind: Kind, file: String, _ problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    public init(_ kind: Kind, file: URL, _ problem: String) {
        self.init(kind, file: file.path, problem)
    }

    public var description: String { "\(file): \(kind.rawValue): \(problem)" }
}

extension FormatError: LocalizedError {
    public var errorDescription: String? { description }
}
