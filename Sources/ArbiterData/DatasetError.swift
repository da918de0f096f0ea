// Errors and per-item problems of dataset loading: each names the file, the item and what is wrong.
import Foundation

/// A problem with one item of a dataset file.
public struct DatasetProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case missingField = "missing field"
        case wrongType = "wrong type"
        case invalidValue = "invalid value"
        case duplicateID = "duplicate id"
        case missingImage = "missing image"
        case unsupportedImage = "unsupported image"
        /// The image file cannot be used: not a PNG, cut short, undecodable, over a size cap, not a regular file.
        case invalidImage = "invalid image"
        /// The image file is not what the item's scene draws.
        case sceneMismatch = "image differs from scene"
        /// A field over its size cap (`DatasetLimits`).
        case tooLarge = "too large"
        case sameAnswers = "same answers"
        case differentAnswers = "different answers"
        case emptyCandidates = "empty candidate list"
        case candidateCollision = "candidate collision"
        case inconsistent = "inconsistent fields"
    }

    /// The item's id (`#<index>` when the item has no readable id).
    public let id: String
    /// The item's position in the file.
    public let index: Int
    public let kind: Kind
    public let problem: String

    public init(id: String, index: Int, kind: Kind, problem: String) {
        self.id = id
        self.index = index
        self.kind = kind
        self.problem = problem
    }

    public var description: String { "item '\(id)' (#\(index)): \(kind.rawValue): \(problem)" }
}

/// A dataset that cannot be loaded: the file, and either a problem with the whole file or with one item.
public struct DatasetError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// The item's problem; nil when the file as a whole is unreadable or malformed.
    public let item: DatasetProblem?
    public let problem: String

    public init(file: String, item: DatasetProblem) {
        self.file = file
        self.item = item
        self.problem = item.description
    }

    public init(file: String, _ problem: String) {
        self.file = file
        self.item = nil
        self.problem = problem
    }

    public var itemID: String? { item?.id }

    public var description: String {
        item == nil ? "\(file): \(problem)" : "\(file): \(problem) (load with skipBadItems to skip such items)"
    }
}

extension DatasetError: LocalizedError {
    public var errorDescription: String? { description }
}

public struct LoadOptions: Sendable, Equatable {
    /// Skip bad items (listing them in `ConflictSet.skipped`) instead of throwing at the first one.
    public var skipBadItems: Bool
    /// For third-party sets: treat an empty candidate list as a bad item. When false (the default) the list
    /// falls back to the answer itself and the item is listed in `ConflictSet.warnings` (the paper's LLaVA set
    /// has no candidate lists at all). Arbiter's own format always requires candidate lists.
    public var requireCandidateLists: Bool

    public init(skipBadItems: Bool = false, requireCandidateLists: Bool = false) {
        self.skipBadItems = skipBadItems
        self.requireCandidateLists = requireCandidateLists
    }
}

/// A loaded dataset: its items, where images are resolved from, and what was skipped or noted.
public struct ConflictSet: Sendable {
    /// The file the items came from.
    public var source: String
    public var items: [ConflictItem]
    /// Folder that `ConflictItem.image` paths are relative to; images are read from there (`image(for:)`). Nil for
    /// a set generated in memory, whose images are drawn from the items' scenes, or a set loaded without images.
    public var imageRoot: URL?
    /// Items left out under `skipBadItems`, with the reason.
    public var skipped: [DatasetProblem]
    /// Items kept with a note (e.g. an empty candidate list replaced by the answer).
    public var warnings: [DatasetProblem]
    /// Each loaded item's position in its file, by id (for messages about the item after loading).
    var positions: [String: Int] = [:]

    public init(source: String, items: [ConflictItem], imageRoot: URL?, skipped: [DatasetProblem] = [],
                warnings: [DatasetProblem] = []) {
        self.source = source
        self.items = items
        self.imageRoot = imageRoot
        self.skipped = skipped
        self.warnings = warnings
    }

    public var skippedCount: Int { skipped.count }

    /// The image file of an item, or nil when it has none or the set has no image root.
    public func imageURL(for item: ConflictItem) -> URL? {
        guard let image = item.image, let imageRoot else { return nil }
        return imageRoot.appendingPathComponent(image)
    }

    /// Item counts per kind, task and target (`none` for items without a target).
    public var counts: (kinds: [String: Int], tasks: [String: Int], targets: [String: Int]) {
        var kinds: [String: Int] = [:], tasks: [String: Int] = [:], targets: [String: Int] = [:]
        for item in items {
            kinds[item.kind.rawValue, default: 0] += 1
            tasks[item.task, default: 0] += 1
            targets[item.target?.rawValue ?? "none", default: 0] += 1
        }
        return (kinds, tasks, targets)
    }
}

/// Collects item problems while loading: throws at the first one, or records it and skips the item.
struct ProblemCollector {
    let file: String
    let options: LoadOptions
    var skipped: [DatasetProblem] = []
    var warnings: [DatasetProblem] = []

    /// Throws the problem (strict mode) or records it (skip mode).
    mutating func report(_ problem: DatasetProblem) throws {
        guard options.skipBadItems else { throw DatasetError(file: file, item: problem) }
        skipped.append(problem)
    }

    mutating func warn(_ problem: DatasetProblem) { warnings.append(problem) }
}
