// WeightStore: strict loading of checkpoint tensors into a model. Every tensor must be taken with the shape
// the model expects, and every tensor of the checkpoint must be taken (after sanitize steps remove or
// rename the ones a model derives or calls differently).
import ArbiterTensor

/// The tensors not yet consumed by a model under construction.
///
///     var store = WeightStore(checkpoint.tensors, source: checkpoint.directory.path)
///     store.remove { $0.hasSuffix("rotary_emb.inv_freq") }       // sanitize
///     let q = try store.take("model.layers.0.self_attn.q_proj.weight", shape: [d, d])
///     try store.finish()                                           // nothing left over
public struct WeightStore: Sendable {
    /// Names the checkpoint in error messages (a folder or file path).
    public let source: String
    private var remaining: [String: StoredTensor]
    private var taken: Set<String> = []
    /// The name in the file of each renamed tensor, so that messages name what the user can find there.
    private var storedNames: [String: String] = [:]

    /// Most unused names listed by `finish()` before "… and N more".
    public static let listedUnusedLimit = 20

    public init(_ tensors: [String: StoredTensor], source: String) {
        self.remaining = tensors
        self.source = source
    }

    /// Names not yet taken, sorted.
    public var names: [String] { remaining.keys.sorted() }

    /// Whether `name` is still available.
    public func contains(_ name: String) -> Bool { remaining[name] != nil }

    /// Removes and returns tensor `name`, which must have `shape`. Throws `.missing` (listing close names)
    /// when absent, `.inconsistent` (expected vs actual shape) when the shape differs.
    public mutating func take(_ name: String, shape: [Int]) throws -> StoredTensor {
        guard let tensor = try takeOptional(name, shape: shape) else {
            throw FormatError(.missing, file: source, missingMessage(name))
        }
        return tensor
    }

    /// Like `take`, but returns nil when the checkpoint has no tensor `name` (a wrong shape still throws).
    public mutating func takeOptional(_ name: String, shape: [Int]) throws -> StoredTensor? {
        guard let tensor = remaining[name] else { return nil }
        guard tensor.shape == shape else {
            // A tensor renamed by a sanitize step keeps the name it has in the file (`StoredTensor.name`).
            let inFile = storedNames[name] ?? (tensor.name != name ? tensor.name : nil)
            let stored = inFile.map { " (\"\($0)\" in the file)" } ?? ""
            throw FormatError(.inconsistent, file: source,
                              "tensor \"\(name)\"\(stored) has shape \(tensor.shape), expected \(shape)")
        }
        remaining[name] = nil
        taken.insert(name)
        return tensor
    }

    /// Throws `.unexpected` when tensors were never taken, listing them (at most `listedUnusedLimit`).
    public func finish() throws {
        guard !remaining.isEmpty else { return }
        let unused = names
        var list = unused.prefix(Self.listedUnusedLimit).joined(separator: ", ")
        if unused.count > Self.listedUnusedLimit { list += " … and \(unused.count - Self.listedUnusedLimit) more" }
        throw FormatError(.unexpected, file: source,
                          "\(unused.count) checkpoint tensor\(unused.count == 1 ? " was" : "s were") never used by the "
                          + "model: \(list)")
    }

    /// Drops every remaining tensor whose name starts with `prefix`; returns the dropped names, sorted.
    @discardableResult
    public mutating func remove(prefix: String) -> [String] {
        remove { $0.hasPrefix(prefix) }
    }

    /// Drops every remaining tensor whose name satisfies `predicate`; returns the dropped names, sorted.
    @discardableResult
    public mutating func remove(where predicate: (String) -> Bool) -> [String] {
        let dropped = remaining.keys.filter(predicate).sorted()
        for name in dropped { remaining[name] = nil }
        return dropped
    }

    /// Renames a remaining tensor (legacy checkpoint names). Throws `.missing` when `from` is absent and
    /// `.unexpected` when `to` already exists.
    public mutating func rename(_ from: String, to: String) throws {
        guard let tensor = remaining[from] else {
            throw FormatError(.missing, file: source, "cannot rename: \(missingMessage(from))")
        }
        guard remaining[to] == nil, !taken.contains(to) else {
            throw FormatError(.unexpected, file: source,
                              "cannot rename \"\(from)\" to \"\(to)\": that name is already used")
        }
        remaining[from] = nil
        storedNames[to] = storedNames[from] ?? from
        remaining[to] = StoredTensor(name: to, dtype: tensor.dtype, shape: tensor.shape, bytes: tensor.bytes,
                                     owner: Retained(tensor), computesInBFloat16: tensor.computesInBFloat16)
    }

    /// "tensor "x" is missing", plus close names, or that it was already taken.
    private func missingMessage(_ name: String) -> String {
        if taken.contains(name) { return "tensor \"\(name)\" was already taken (each tensor is taken once)" }
        let close = Self.closeNames(to: name, in: Array(remaining.keys))
        let hint = close.isEmpty ? "no similar name among \(remaining.count) remaining tensors"
            : "close names: " + close.joined(separator: ", ")
        return "tensor \"\(name)\" is missing (\(hint))"
    }

    /// Up to `limit` names like `name`: ones that end with ".name" or that it ends with (a different prefix), and
    /// ones within a small edit distance, closest first.
    static func closeNames(to name: String, in candidates: [String], limit: Int = 5) -> [String] {
        let target = Array(name.utf8)
        let threshold = max(2, target.count / 3)
        var scored: [(distance: Int, name: String)] = []
        for candidate in candidates {
            if candidate.hasSuffix("." + name) || name.hasSuffix("." + candidate) {
                scored.append((0, candidate))
                continue
            }
            let bytes = Array(candidate.utf8)
            guard abs(bytes.count - target.count) <= threshold else { continue }
            let distance = editDistance(target, bytes)
            if distance <= threshold { scored.append((distance, candidate)) }
        }
        return scored.sorted { ($0.distance, $0.name) < ($1.distance, $1.name) }.prefix(limit).map(\.name)
    }

    /// Levenshtein distance of two byte strings.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// Keeps a renamed tensor's original storage alive.
private final class Retained: @unchecked Sendable {  // immutable
    let tensor: StoredTensor
    init(_ tensor: StoredTensor) { self.tensor = tensor }
}
