// The error every stage of ArbiterTokenizers throws: which tokenizer file, and what is wrong with it.
import Foundation

/// A problem with a tokenizer file or with a request made to a tokenizer.
/// `description` names the file, the JSON key path where one applies, and the problem.
public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case unreadable     // cannot open or read the file
        case malformed      // not JSON, or JSON of the wrong shape
        case unsupported    // a stage `type` (or option) Arbiter does not implement
        case missing        // a required key or token is absent
        case inconsistent   // parts of the file disagree (merges naming unknown tokens, duplicate ids)
        case invalidInput   // a request the tokenizer cannot serve (unknown id, unaligned span)
    }

    public let kind: Kind
    public let file: String
    public let problem: String

    public init(_ kind: Kind, file: String, _ problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(kind.rawValue): \(problem)" }
}

extension TokenizerError: LocalizedError {
    public var errorDescription: String? { description }
}
