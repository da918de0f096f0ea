// Sharded runs: the intervened passes of one analysis run spread over N processes (Slurm array tasks, machines)
// and merged back into exactly the results of the unsharded run.
//
// Every intervened pass goes through `AnalysisRunner.scores(…)`, which cuts its requests into batches that depend
// on the requests alone. Each process of a sharded run replays the whole analysis; of each `scores` call it
// computes only the batches b with b mod N = K − 1 and writes their scores to a partial file. A batch is computed
// alone, on one BLAS thread, exactly as in an unsharded run, so a partial's scores are the unsharded run's bit for
// bit; `merge` replays the analysis once more with every batch read from the partials.
//
// Later passes depend on earlier results (the top heads on the ranking, the amplification on each set's α), so a
// sharded run has three rounds, cut at fixed checkpoints of the analysis (`AnalysisRunner.checkpoint()`):
//   1. knockouts and single-head ablations (all that the ranking needs);
//   2. blocking the top set and the random sets, general ability, α on the calibration failures;
//   3. amplification with each set's α.
// Round r of shard K runs once every shard's round r − 1 is written: it reads their partials, computes its own
// batches of round r's calls and stops at checkpoint r. The other shards' batches of round r get placeholder
// scores: no pass of round r depends on another pass of round r, so placeholders reach only statistics that the
// stop at the checkpoint discards.
import ArbiterFormats
import Foundation

/// Shard K of N (1-based), written `K/N`.
public struct ShardSpec: Sendable, Equatable, Codable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// At most this many shards (a partial per shard and round is written; more than this is a typo).
    public static let maximumCount = 10_000

    public init(index: Int, count: Int) throws {
        guard count >= 1, count <= Self.maximumCount else {
            throw ShardError.invalid("the shard count \(count) must be between 1 and \(Self.maximumCount)")
        }
        guard (1...count).contains(index) else {
            throw ShardError.invalid("shard \(index) of \(count) does not exist: shards are numbered 1…\(count)")
        }
        self.index = index
        self.count = count
    }

    /// `K/N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError.invalid("'\(text)' is not K/N (shard K of N, e.g. 2/4)")
        }
        try self.init(index: k, count: n)
    }

    public var description: String { "\(index)/\(count)" }
}

/// What a sharded run is: partials merge only when all of it is equal.
public struct ShardRunIdentity: Sendable, Codable, Equatable {
    public var arbiterVersion = ArbiterVersion.string
    /// `ContentFingerprint.folder` of the model folder.
    public var modelFingerprint: String
    public var configuration: AnalysisConfiguration
    public var keyValueBudget: Int
    /// `AnalysisRunner.streamBudget` (absent in partials written before it: the default).
    public var streamBudget: Int?
    /// What a merge needs to replay the run (the caller's options: model and data folders, layout, seed, …).
    public var inputs: [String: String]
    /// The prepared samples' fingerprint (ids, token ids, pixel values, positions, answers), set by the analysis.
    public var dataFingerprint: String?

    public init(modelFingerprint: String, configuration: AnalysisConfiguration, keyValueBudget: Int = 1 << 30,
                streamBudget: Int = AnalysisRunner.defaultStreamBudget, inputs: [String: String]) {
        self.modelFingerprint = modelFingerprint
        self.configuration = configuration
        self.keyValueBudget = keyValueBudget
        self.streamBudget = streamBudget
        self.inputs = inputs
    }

    /// The first field that differs from `other`, with both values, or nil.
    func difference(from other: ShardRunIdentity) -> String? {
        if arbiterVersion != other.arbiterVersion {
            return "Arbiter version \(other.arbiterVersion), expected \(arbiterVersion)"
        }
        if modelFingerprint != other.modelFingerprint {
            return "model fingerprint \(other.modelFingerprint), expected \(modelFingerprint) (another model)"
        }
        if configuration != other.configuration { return "another analysis configuration" }
        if keyValueBudget != other.keyValueBudget {
            return "key/value budget \(other.keyValueBudget), expected \(keyValueBudget)"
        }
        let streams = streamBudget ?? AnalysisRunner.defaultStreamBudget
        let theirs = other.streamBudget ?? AnalysisRunner.defaultStreamBudget
        if streams != theirs { return "residual stream budget \(theirs), expected \(streams)" }
        for key in Set(inputs.keys).union(other.inputs.keys).sorted() where inputs[key] != other.inputs[key] {
            return "\(key) '\(other.inputs[key] ?? "(none)")', expected '\(inputs[key] ?? "(none)")'"
        }
        if let mine = dataFingerprint, let theirs = other.dataFingerprint, mine != theirs {
            return "data fingerprint \(theirs), expected \(mine) (other items)"
        }
        return nil
    }
}

/// One partial result: the scores of the batches one shard computed in one round.
public struct ShardPartial: Sendable, Codable {
    public static let format = 1
    public static let rounds = 3

    public var format = Self.format
    public var shard: Int
    public var shards: Int
    public var round: Int
    public var rounds = Self.rounds
    public var identity: ShardRunIdentity
    public var calls: [Call]

    /// One `scores` call of the run: its index in the run, a fingerprint of its requests and batches, how many
    /// batches it has, and the batches this shard computed.
    public struct Call: Sendable, Codable {
        public var call: Int
        public var fingerprint: String
        public var batches: Int
        public var computed: [Batch]
    }

    /// A batch's scores in request order, each `top pInstructed pCompetitor s` with the three doubles as the
    /// hexadecimal bit patterns (exact).
    public struct Batch: Sendable, Codable {
        public var batch: Int
        public var scores: [String]
    }

    public static func fileName(round: Int, shard: Int, of shards: Int) -> String {
        "round-\(round)-shard-\(shard)-of-\(shards).json"
    }

    /// (round, shard, shards) of a partial's file name, nil for other names.
    public static func parseFileName(_ name: String) -> (round: Int, shard: Int, shards: Int)? {
        guard name.hasPrefix("round-"), name.hasSuffix(".json") else { return nil }
        let parts = name.dropFirst("round-".count).dropLast(".json".count).split(separator: "-")
        guard parts.count == 5, parts[1] == "shard", parts[3] == "of",
              let r = Int(parts[0]), let k = Int(parts[2]), let n = Int(parts[4]) else { return nil }
        return (r, k, n)
    }

    static func encode(_ score: FollowingScore) -> String {
        "\(score.top) \(String(score.pInstructed.bitPattern, radix: 16)) "
            + "\(String(score.pCompetitor.bitPattern, radix: 16)) \(String(score.s.bitPattern, radix: 16))"
    }

    static func decode(_ text: String) -> FollowingScore? {
        let parts = text.split(separator: " ")
        guard parts.count == 4, let top = Int(parts[0]), let a = UInt64(parts[1], radix: 16),
              let b = UInt64(parts[2], radix: 16), let s = UInt64(parts[3], radix: 16) else { return nil }
        return FollowingScore(top: top, pInstructed: Double(bitPattern: a), pCompetitor: Double(bitPattern: b),
                              s: Double(bitPattern: s))
    }

    func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads one partial; throws `FormatError` naming the file.
    public static func read(_ url: URL) throws -> ShardPartial {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(.unreadable, file: url, "cannot read the partial result: \(error.localizedDescription)")
        }
        let partial: ShardPartial
        do { partial = try JSONDecoder().decode(ShardPartial.self, from: data) } catch let e as DecodingError {
            throw FormatError(.malformed, file: url, "not a partial result of a sharded run: \(JSONFile.describe(e))")
        }
        guard partial.format == format else {
            throw FormatError(.unsupported, file: url, "partial format \(partial.format); this Arbiter reads \(format)")
        }
        guard partial.rounds == rounds, (1...rounds).contains(partial.round),
              (try? ShardSpec(index: partial.shard, count: partial.shards)) != nil else {
            throw FormatError(.malformed, file: url, "round \(partial.round) of \(partial.rounds), shard "
                              + "\(partial.shard)/\(partial.shards): not a round and shard of this Arbiter's runs")
        }
        if let named = parseFileName(url.lastPathComponent),
           named != (partial.round, partial.shard, partial.shards) {
            throw FormatError(.inconsistent, file: url, "named round \(named.round), shard \(named.shard)/"
                              + "\(named.shards), but it holds round \(partial.round), shard "
                              + "\(partial.shard)/\(partial.shards)")
        }
        for call in partial.calls {
            for batch in call.computed where batch.batch < 0 || batch.batch >= call.batches
                || batch.scores.contains(where: { decode($0) == nil }) {
                throw FormatError(.malformed, file: url, "call \(call.call), batch \(batch.batch): not a batch of "
                                  + "\(call.batches) with scores written as `top bits bits bits`")
            }
        }
        return partial
    }

    /// The partials among `urls` (a folder stands for the partials in it), each with its file, sorted by round
    /// and shard; throws on a partial that is unreadable, or duplicated (the same round and shard twice).
    public static func collect(_ urls: [URL]) throws -> [(file: URL, partial: ShardPartial)] {
        var files: [URL] = []
        for url in urls {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw FormatError(.missing, file: url, "no such partial result or folder of partial results")
            }
            if isDirectory.boolValue {
                let names: [String]
                do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
                    throw FormatError(.unreadable, file: url, "cannot list the folder: \(error.localizedDescription)")
                }
                files += names.filter { parseFileName($0) != nil }.sorted().map { url.appendingPathComponent($0) }
            } else {
                files.append(url)
            }
        }
        var seen: [String: URL] = [:]
        var out: [(file: URL, partial: ShardPartial)] = []
        for file in files {
            let partial = try read(file)
            let key = "\(partial.round) \(partial.shard)"
            if let other = seen[key] {
                throw ShardError.duplicate(file: file.path, other: other.path, round: partial.round,
                                           shard: "\(partial.shard)/\(partial.shards)")
            }
            seen[key] = file
            out.append((file, partial))
        }
        return out.sorted { ($0.partial.round, $0.partial.shard) < ($1.partial.round, $1.partial.shard) }
    }
}

/// Why a sharded run or a merge cannot go on (each names the shard or file it is about).
public enum ShardError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case duplicate(file: String, other: String, round: Int, shard: String)
    case mismatch(file: String, problem: String)
    case missing(round: Int, shards: [Int], of: Int, folder: String)
    case missingBatch(call: Int, batch: Int, file: String)

    public var description: String {
        switch self {
        case .invalid(let problem): return problem
        case let .duplicate(file, other, round, shard):
            return "\(file): round \(round) of shard \(shard) again (also in \(other)); merge each shard once"
        case let .mismatch(file, problem):
            return "\(file): made by another run — \(problem); its partials cannot be merged with this run's"
        case let .missing(round, shards, n, folder):
            let names = shards.map { ShardPartial.fileName(round: round, shard: $0, of: n) }
            return "round \(round) lacks shard\(shards.count == 1 ? "" : "s") "
                + shards.map { "\($0)/\(n)" }.joined(separator: ", ") + " (" + names.joined(separator: ", ")
                + " in \(folder)): run " + (shards.count == 1 ? "it" : "them")
                + " first (`arbiter verify … --shard K/\(n) --partials \(folder)`; re-running a shard is safe)"
        case let .missingBatch(call, batch, file):
            return "\(file): batch \(batch) of call \(call) is not in it although the file is there — it was made "
                + "by a run with other passes"
        }
    }
}

extension ShardError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Thrown at the checkpoint that ends a shard's round, after its partial is written: not a failure.
public struct ShardRoundWritten: Error, CustomStringConvertible {
    public let shard: ShardSpec
    public let round: Int
    public let file: URL
    public var description: String {
        "shard \(shard): round \(round) of \(ShardPartial.rounds) written to \(file.path)"
    }
}

/// How `AnalysisRunner.scores` gets its batches in a sharded run (`shard`) or its merge (`merge`).
public final class PassSharding: @unchecked Sendable {
    enum Mode { case shard(ShardSpec, folder: URL), merge }

    let mode: Mode
    /// The round a shard computes (1…3); for a merge, one past the last.
    public let round: Int
    /// How many shards the run has.
    public let shards: Int
    public private(set) var identity: ShardRunIdentity
    /// Per call index: its fingerprint, the file that holds it and its stored batches.
    private var stored: [Int: (fingerprint: String, file: String, batches: Int, scores: [Int: [FollowingScore]])] = [:]
    private var nextCall = 0
    private var checkpoints = 0
    private var computed: [ShardPartial.Call] = []
    private let referenceFile: String?
    private let lock = NSLock()

    private init(mode: Mode, round: Int, shards: Int, identity: ShardRunIdentity,
                 partials: [(file: URL, partial: ShardPartial)]) throws {
        self.mode = mode
        self.round = round
        self.shards = shards
        self.identity = identity
        referenceFile = partials.first?.file.path
        if let data = partials.first?.partial.identity.dataFingerprint { self.identity.dataFingerprint = data }
        for (file, partial) in partials where partial.round < round {
            for call in partial.calls {
                var entry = stored[call.call] ?? (call.fingerprint, file.path, call.batches, [:])
                guard entry.fingerprint == call.fingerprint, entry.batches == call.batches else {
                    throw ShardError.mismatch(file: file.path, problem: "its call \(call.call) holds other passes "
                                              + "than \(entry.file)'s")
                }
                for batch in call.computed { entry.scores[batch.batch] = batch.scores.map { ShardPartial.decode($0)! } }
                stored[call.call] = entry
            }
        }
    }

    /// Checks every partial against `identity` and each other (same shard count, same run).
    private static func check(_ partials: [(file: URL, partial: ShardPartial)], identity: ShardRunIdentity,
                              shards: Int?) throws {
        let n = shards ?? partials.first?.partial.shards
        var data: (String, String)?
        for (file, partial) in partials {
            if let n, partial.shards != n {
                throw ShardError.mismatch(file: file.path, problem: "\(partial.shards) shards, this run has \(n)")
            }
            if let difference = identity.difference(from: partial.identity) {
                throw ShardError.mismatch(file: file.path, problem: difference)
            }
            if let mine = partial.identity.dataFingerprint {
                if let (first, firstFile) = data, first != mine {
                    throw ShardError.mismatch(file: file.path, problem: "data fingerprint \(mine), but \(firstFile) "
                                              + "has \(first) (other items)")
                }
                data = data ?? (mine, file.path)
            }
        }
    }

    /// Shard `spec` of a run writing its partials to `folder` (created by Arbiter; see
    /// `OutputSafety.prepareGrowingFolder`): the round to compute, or nil when all of its rounds are written.
    /// Throws when a partial there belongs to another run, or when the previous round lacks shards.
    public static func shard(_ spec: ShardSpec, folder: URL, identity: ShardRunIdentity) throws -> PassSharding? {
        let partials = try ShardPartial.collect([folder])
        try check(partials, identity: identity, shards: spec.count)
        let have = Set(partials.map { "\($0.partial.round) \($0.partial.shard)" })
        guard let round = (1...ShardPartial.rounds).first(where: { !have.contains("\($0) \(spec.index)") }) else {
            return nil
        }
        if round > 1 {
            let missing = (1...spec.count).filter { !have.contains("\(round - 1) \($0)") }
            if !missing.isEmpty {
                throw ShardError.missing(round: round - 1, shards: missing, of: spec.count, folder: folder.path)
            }
        }
        return try PassSharding(mode: .shard(spec, folder: folder), round: round, shards: spec.count,
                                identity: identity, partials: partials)
    }

    /// The merge of `partials` (every round of every shard, checked against `identity` — whose inputs and model
    /// fingerprint the caller took from the first partial and the model folder).
    public static func merge(_ partials: [(file: URL, partial: ShardPartial)],
                             identity: ShardRunIdentity) throws -> PassSharding {
        guard let first = partials.first else { throw ShardError.invalid("no partial results to merge") }
        try check(partials, identity: identity, shards: nil)
        let n = first.partial.shards
        let folder = first.file.deletingLastPathComponent().path
        for round in 1...ShardPartial.rounds {
            let have = Set(partials.filter { $0.partial.round == round }.map(\.partial.shard))
            let missing = (1...n).filter { !have.contains($0) }
            if !missing.isEmpty { throw ShardError.missing(round: round, shards: missing, of: n, folder: folder) }
        }
        return try PassSharding(mode: .merge, round: ShardPartial.rounds + 1, shards: n, identity: identity,
                                partials: partials)
    }

    /// The samples' fingerprint: refuses partials of other items, and records it for the partial to write.
    func checkData(_ fingerprint: String) throws {
        try lock.withLock {
            if let known = identity.dataFingerprint, known != fingerprint {
                throw ShardError.mismatch(file: referenceFile ?? "partials",
                                          problem: "data fingerprint \(known), this run's items give \(fingerprint)")
            }
            identity.dataFingerprint = fingerprint
        }
    }

    /// Where each batch of a call comes from.
    enum Source { case stored([FollowingScore]), compute, placeholder }

    /// Starts the next `scores` call (of `batches` batches, with `fingerprint`): the source of each batch.
    func beginCall(fingerprint: String, batches: Int) throws -> (call: Int, sources: [Source]) {
        try lock.withLock {
            let call = nextCall
            nextCall += 1
            let callRound = checkpoints + 1
            if let entry = stored[call] {
                guard entry.fingerprint == fingerprint, entry.batches == batches else {
                    throw ShardError.mismatch(file: entry.file, problem: "its call \(call) holds other passes "
                                              + "than this run's (fingerprint \(entry.fingerprint), expected "
                                              + "\(fingerprint))")
                }
            }
            let sources = try (0..<batches).map { b -> Source in
                if let scores = stored[call]?.scores[b] { return .stored(scores) }
                guard case let .shard(spec, _) = mode, callRound == round else {
                    // Earlier rounds (and a merge) must find every batch.
                    let n = shards
                    let name = ShardPartial.fileName(round: callRound, shard: b % n + 1, of: n)
                    throw ShardError.missingBatch(call: call, batch: b, file: stored[call]?.file ?? name)
                }
                return b % spec.count == spec.index - 1 ? .compute : .placeholder
            }
            if case .shard = mode, callRound == round {
                computed.append(ShardPartial.Call(call: call, fingerprint: fingerprint, batches: batches, computed: []))
            }
            return (call, sources)
        }
    }

    /// Records the batches this shard computed for `call`.
    func record(call: Int, batches: [(Int, [FollowingScore])]) {
        lock.withLock {
            guard let k = computed.lastIndex(where: { $0.call == call }) else { return }
            computed[k].computed += batches.map {
                ShardPartial.Batch(batch: $0.0, scores: $0.1.map(ShardPartial.encode))
            }
        }
    }

    /// Checkpoint r of the analysis: a shard computing round r writes its partial and stops (`ShardRoundWritten`).
    func checkpoint() throws {
        let (passed, spec, folder): (Int, ShardSpec?, URL?) = lock.withLock {
            checkpoints += 1
            if case let .shard(spec, folder) = mode { return (checkpoints, spec, folder) }
            return (checkpoints, nil, nil)
        }
        guard let spec, let folder, passed == round else { return }
        let partial = ShardPartial(shard: spec.index, shards: spec.count, round: round, identity: identity,
                                   calls: lock.withLock { computed })
        let file = folder.appendingPathComponent(ShardPartial.fileName(round: round, shard: spec.index, of: spec.count))
        try OutputSafety.writeNew(try partial.jsonData(), to: file, option: "--partials")
        throw ShardRoundWritten(shard: spec, round: round, file: file)
    }
}
