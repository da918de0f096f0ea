// Sharded runs (Sharding.swift): N shards × 3 rounds merged give exactly the unsharded results, and merges refuse
// missing, duplicated, mismatched and malformed partials, naming the shard or file.
@testable import ArbiterAnalyses
import ArbiterFormats
import ArbiterModels
import Foundation
import Testing

@Suite("Sharded runs and their merge", .serialized)
struct ShardingTests {
    static func configuration() -> AnalysisConfiguration {
        var c = AnalysisTests.configuration()
        c.alphaGrid = [2, 4]   // so that round 2 holds an α call
        return c
    }

    static func identity(model: String = "tiny-llava") -> ShardRunIdentity {
        ShardRunIdentity(modelFingerprint: model, configuration: configuration(), inputs: ["model": model])
    }

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-shards-\(UUID().uuidString)")
        try OutputSafety.prepareGrowingFolder(url.path, kind: .shardPartials, option: "--partials") {
            ShardPartial.parseFileName($0) != nil
        }
        return url
    }

    /// Runs shard `spec`'s next round; returns the round written (nil: all done).
    @discardableResult
    static func runShard(_ spec: ShardSpec, folder: URL, session: ModelSession, items: [ProbeItem],
                         identity: ShardRunIdentity = identity()) throws -> Int? {
        guard let sharding = try PassSharding.shard(spec, folder: folder, identity: identity) else { return nil }
        do {
            _ = try AnalysisSuite.run(session: session, items: items, dataset: "fixture",
                                      configuration: configuration(), sharding: sharding)
        } catch let written as ShardRoundWritten {
            #expect(written.round == sharding.round && written.shard == spec)
            return written.round
        }
        Issue.record("shard \(spec) round \(sharding.round) ended without its checkpoint")
        return nil
    }

    @Test("3 shards × 3 rounds, merged: results equal the unsharded run's, bit for bit (timings aside)")
    func mergeEqualsUnsharded() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        var plain = try AnalysisSuite.run(session: session, items: items, dataset: "fixture",
                                          configuration: Self.configuration())
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for round in 1...ShardPartial.rounds {
            for k in 1...3 {
                #expect(try Self.runShard(try ShardSpec(index: k, count: 3), folder: folder, session: session,
                                          items: items) == round)
            }
        }
        #expect(try Self.runShard(try ShardSpec(index: 2, count: 3), folder: folder, session: session,
                                  items: items) == nil, "a shard with every round written has nothing to do")
        let partials = try ShardPartial.collect([folder])
        #expect(partials.count == 9)
        // Every round computed passes; round 1's (many batches) spread over every shard.
        for round in 1...3 {
            let counts = partials.filter { $0.partial.round == round }
                .map { $0.partial.calls.reduce(0) { $0 + $1.computed.count } }
            #expect(counts.reduce(0, +) > 0, "round \(round): \(counts)")
            if round == 1 { #expect(counts.allSatisfy { $0 > 0 }, "round 1: \(counts)") }
        }
        var merged = try AnalysisSuite.run(session: session, items: items, dataset: "fixture",
                                           configuration: Self.configuration(),
                                           sharding: try PassSharding.merge(partials, identity: Self.identity()))
        #expect(merged.interventions.failedCount > 0, "amplification (round 3) had failures to fix")
        plain.seconds = 0; merged.seconds = 0
        #expect(try plain.jsonData() == merged.jsonData())
    }

    @Test("a round waits for the previous one; merges refuse missing, duplicated, mismatched and malformed partials")
    func refusals() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let one = try ShardSpec(index: 1, count: 2), two = try ShardSpec(index: 2, count: 2)
        #expect(try Self.runShard(one, folder: folder, session: session, items: items) == 1)
        // Round 2 of shard 1 needs round 1 of shard 2.
        #expect(throws: ShardError.missing(round: 1, shards: [2], of: 2, folder: folder.path)) {
            try PassSharding.shard(one, folder: folder, identity: Self.identity())
        }
        // A merge needs every round of every shard.
        #expect(throws: ShardError.missing(round: 1, shards: [2], of: 2, folder: folder.path)) {
            try PassSharding.merge(try ShardPartial.collect([folder]), identity: Self.identity())
        }
        let file = folder.appendingPathComponent(ShardPartial.fileName(round: 1, shard: 1, of: 2))
        // The same partial twice.
        #expect(throws: ShardError.duplicate(file: file.path, other: file.path, round: 1, shard: "1/2")) {
            try ShardPartial.collect([folder, file])
        }
        // Another model, or another shard count.
        do {
            _ = try PassSharding.shard(two, folder: folder, identity: Self.identity(model: "other"))
            Issue.record("a partial of another model was accepted")
        } catch let ShardError.mismatch(named, problem) {
            #expect(named == file.path && problem.contains("model fingerprint"))
        }
        #expect(throws: ShardError.self) {
            try PassSharding.shard(try ShardSpec(index: 1, count: 3), folder: folder, identity: Self.identity())
        }
        // Other items: caught when the shard prepares its samples.
        do {
            _ = try Self.runShard(two, folder: folder, session: session, items: try Fixtures.items(perTarget: 5))
            Issue.record("a shard of other items was accepted")
        } catch let ShardError.mismatch(named, problem) {
            #expect(named == file.path && problem.contains("data fingerprint"))
        }
        // A partial renamed to another shard, and a malformed one.
        let renamed = folder.appendingPathComponent(ShardPartial.fileName(round: 1, shard: 2, of: 2))
        try FileManager.default.copyItem(at: file, to: renamed)
        do {
            _ = try ShardPartial.collect([folder])
            Issue.record("a renamed partial was accepted")
        } catch let error as FormatError {
            #expect(error.file == renamed.path && "\(error)".contains("holds round 1, shard 1/2"))
        }
        try Data("{\"format\": 1".utf8).write(to: renamed)
        do {
            _ = try ShardPartial.collect([folder])
            Issue.record("a malformed partial was accepted")
        } catch let error as FormatError {
            #expect(error.file == renamed.path)
        }
    }

    @Test("shard specs: K/N parsed, bad ones refused with the reason")
    func specs() throws {
        #expect(try ShardSpec(parsing: "2/4") == ShardSpec(index: 2, count: 4))
        for bad in ["0/4", "5/4", "2/0", "2", "a/b", "2/4/1", "-1/3", ""] {
            #expect(throws: ShardError.self) { try ShardSpec(parsing: bad) }
        }
    }

    @Test("stored scores round-trip bit for bit (NaN, infinities, negative zero)")
    func scoreEncoding() {
        for v in [0.0, -0.0, .nan, .infinity, -.infinity, 1e-300, 0.1] {
            let s = FollowingScore(top: 7, pInstructed: v, pCompetitor: 1 - v, s: -v)
            let back = ShardPartial.decode(ShardPartial.encode(s))!
            #expect(back.top == 7 && back.pInstructed.bitPattern == v.bitPattern
                    && back.pCompetitor.bitPattern == (1 - v).bitPattern && back.s.bitPattern == (-v).bitPattern)
        }
    }
}
