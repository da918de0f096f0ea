// Named, token-exact spans of a prompt: which positions are image, text context, instruction, question,
// constraint (the output-format sentence) and the last position — the units every analysis talks about.

public struct TokenSpans: Sendable, Equatable, Codable {
    /// The span names of the paper's prompt layout.
    public static let standardNames = ["image", "context", "instruction", "question", "constraint", "last"]

    /// Span name → token positions, sorted and unique.
    public private(set) var positionsByName: [String: [Int]]
    public let tokenCount: Int

    public init(tokenCount: Int, spans: [String: [Range<Int>]] = [:]) throws {
        self.tokenCount = tokenCount
        positionsByName = [:]
        for (name, ranges) in spans { try add(name, ranges) }
        if tokenCount > 0 && positionsByName["last"] == nil { positionsByName["last"] = [tokenCount - 1] }
    }

    /// Adds (or extends) span `name` with token ranges.
    public mutating func add(_ name: String, _ ranges: [Range<Int>]) throws {
        guard !name.isEmpty, !name.contains("->"), !name.contains("@") else {
            throw ModelError.invalidInput("span name '\(name)' is empty or contains '->' or '@'")
        }
        for r in ranges where r.lowerBound < 0 || r.upperBound > tokenCount {
            throw ModelError.invalidInput("span '\(name)' range \(r) is outside the \(tokenCount) prompt tokens")
        }
        let merged = Set((positionsByName[name] ?? []) + ranges.flatMap { Array($0) })
        positionsByName[name] = merged.sorted()
    }

    public var names: [String] { positionsByName.keys.sorted() }

    /// Positions of a span. Besides the stored spans, `text` means every position outside `image`,
    /// `after-image` every position after the image's last (every position of a prompt without an image), `cues`
    /// the image and the text context together (the paper's "cue" edges knock both out at once), and `all`
    /// every position. An unknown name is an error listing the known ones.
    public func positions(_ name: String) throws -> [Int] {
        if let p = positionsByName[name] { return p }
        switch name {
        case "all": return Array(0..<tokenCount)
        case "cues": return Set((positionsByName["image"] ?? []) + (positionsByName["context"] ?? [])).sorted()
        case "text":
            let image = Set(positionsByName["image"] ?? [])
            return (0..<tokenCount).filter { !image.contains($0) }
        case "after-image":
            return Array(((positionsByName["image"]?.last).map { $0 + 1 } ?? 0)..<tokenCount)
        default:
            let known = (names + ["text", "after-image", "cues", "all"]).joined(separator: ", ")
            throw ModelError.invalidInput("the prompt has no span '\(name)'; it has: \(known)")
        }
    }

    /// Contiguous ranges of a span (for display).
    public func ranges(_ name: String) throws -> [Range<Int>] {
        var out: [Range<Int>] = []
        for p in try positions(name) {
            if let last = out.last, last.upperBound == p { out[out.count - 1] = last.lowerBound..<(p + 1) }
            else { out.append(p..<(p + 1)) }
        }
        return out
    }
}
