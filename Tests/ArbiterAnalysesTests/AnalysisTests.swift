// Analyses on the tiny random LLaVA: every analysis runs, returns well-formed numbers, and is deterministic.
// (A random model says nothing about the paper's claims; these tests pin the machinery.)
import ArbiterAnalyses
import ArbiterData
import ArbiterFormats
import ArbiterModels
import Foundation
import PropertyBased
import Testing

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let tinyLlava = root.appendingPathComponent("GoldenData/models/tiny-llava")
    static let image = root.appendingPathComponent("GoldenData/images/llava-test-47x39.png")

    /// Conflict, consistent and unimodal items built from words the tiny tokenizer knows.
    static func items(perTarget: Int) throws -> [ProbeItem] {
        let picture = try PNGImage.read(url: image)
        let colors = ["red", "blue", "green", "yellow", "white", "black"]
        var out: [ProbeItem] = []
        for i in 0..<(2 * perTarget) {
            let target: InstructionTarget = i % 2 == 0 ? .image : .text
            let a = colors[i % colors.count], b = colors[(i + 1) % colors.count]
            let fields = PromptFields(context: "The shop owner said the cube is \(b) and everyone agreed.",
                                      instruction: target == .image ? "Rely on the image." : "Rely on the text.",
                                      question: "What color is the cube?", constraint: "The answer is")
            out.append(ProbeItem(id: "c\(i)", kind: "conflict", target: target, fields: fields, image: picture,
                                 instructed: [target == .image ? a : b], competitor: [target == .image ? b : a]))
        }
        for i in 0..<4 {
            out.append(ProbeItem(id: "k\(i)", kind: "consistent", target: nil,
                                 fields: PromptFields(context: "The cube is \(colors[i]).", question: "What color is the cube?", constraint: "The answer is"),
                                 image: picture, instructed: [colors[i]], competitor: [colors[(i + 2) % 6]]))
        }
        return out
    }
}

@Suite("Analyses on a tiny random LLaVA")
struct AnalysisTests {
    static func configuration() -> AnalysisConfiguration {
        var c = AnalysisConfiguration()
        c.randomHeadSets = 3
        c.alphaGrid = [2]
        c.minimumPerTarget = 2
        return c
    }

    @Test("all analyses run and are well-formed; a second run gives identical numbers")
    func suiteRuns() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        let a = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: Self.configuration())
        let layers = session.model.decoder.layerCount, heads = session.model.decoder.configuration.attentionHeads
        #expect(a.following.counts["overall"]?[1] == 12)
        for (_, byTarget) in a.flow.shift { for (_, curve) in byTarget { #expect(curve.count == layers) } }
        #expect(a.flow.shift.count == FlowEdge.paperEdges.count)
        #expect(a.lens.agreement["last"]?.count == layers)
        #expect(a.lens.agreement["last"]?.last?.value == 1, "the last layer's logit lens is the model's own decision")
        #expect(a.attribution.heads.count == layers && a.attribution.heads[0].count == heads)
        #expect(a.ranking.causalOrder.count == layers * heads)
        #expect(a.interventions.heads.count == HeadRanking.setSize(fraction: 0.05, total: layers * heads))
        #expect(a.interventions.randomRelativeDrops.count == 3)
        #expect(Set(a.calibrationIDs).isDisjoint(with: a.heldOutIDs))
        let b = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: Self.configuration())
        var ja = a, jb = b
        ja.seconds = 0; jb.seconds = 0
        #expect(try ja.jsonData() == jb.jsonData())
    }

    @Test("the knockout results carry both splits: the calibration and held-out curves, disjoint item counts")
    func flowSplits() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let a = try AnalysisSuite.run(session: session, items: try Fixtures.items(perTarget: 6), dataset: "fixture",
                                      configuration: Self.configuration())
        let layers = session.model.decoder.layerCount
        for edge in FlowEdge.paperEdges.map(\.description) {
            for target in ["image", "text"] {
                let all = try #require(a.flow.shift[edge]?[target])
                let cal = try #require(a.flow.calibrationShift[edge]?[target])
                let held = try #require(a.flow.heldOutShift[edge]?[target])
                #expect(cal.count == layers && held.count == layers)
                // Each target's 6 conflict items: 3 in each split (the split is per target).
                #expect(all[0].count == 6 && cal[0].count == 3 && held[0].count == 3, "\(edge) \(target)")
            }
        }
    }

    @Test("amplification's failures are topped up from generated conflict items, in rounds, up to the cap")
    func amplificationTopUp() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 4)
        var c = Self.configuration()
        c.minimumFailed = 6
        c.extraConflictBatch = 4
        c.extraConflictCap = 12
        nonisolated(unsafe) var rounds: [Int] = []
        let more: (Int, Int) throws -> [ProbeItem] = { round, count in
            rounds.append(round)
            return try Fixtures.items(perTarget: 4).filter { $0.kind == "conflict" }.prefix(count).map { item in
                var item = item
                item.id = "extra\(round)-\(item.id)"
                return item
            }
        }
        let a = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c,
                                      moreConflictItems: more)
        let h = a.interventions
        let heldOutFailed = h.failedCount - h.extraFailedCount
        #expect(heldOutFailed < c.minimumFailed, "the fixture must need a top-up")
        #expect(rounds == Array(0..<rounds.count) && !rounds.isEmpty)
        #expect(h.extraConflictItems == 4 * rounds.count && h.extraConflictItems <= c.extraConflictCap)
        #expect(h.extraFailedCount <= h.extraConflictItems && h.extraConflictCap == 12)
        // Stopped because the minimum was met, or the cap was spent — never earlier, never later.
        #expect(h.failedCount >= c.minimumFailed || h.extraConflictItems == c.extraConflictCap, "\(h.failedCount)")
        #expect(h.randomFixRates.count == 3 && !h.amplifiedFixRate.isNaN)
        // Without a generator nothing is generated, and the result says it could not be.
        let fixed = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c)
        #expect(fixed.interventions.extraConflictItems == 0 && fixed.interventions.extraConflictCap == 0)
        #expect(fixed.interventions.failedCount == heldOutFailed)
    }

    @Test("too few samples for a target is a clear error")
    func tooFew() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 1)
        let error = #expect(throws: AnalysisError.self) {
            try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: Self.configuration())
        }
        #expect(error?.description.contains("at least") == true)
    }

    @Test("candidates whose first tokens coincide are reported with the item id")
    func sameFirstToken() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        var item = try Fixtures.items(perTarget: 1)[0]
        item.competitor = item.instructed
        let error = #expect(throws: AnalysisError.self) { try AnalysisSample(item, session: session) }
        #expect(error?.description.contains("c0") == true && error?.description.contains("same tokens") == true)
    }
}

@Suite("Scoring and statistics")
struct ScoringTests {
    /// Checks one case; kept out of the property closure (closures nested in propertyCheck bodies crash or
    /// miscompile Swift 6.3.1).
    static func scoreMatchesDirectComputation(_ logits: [Float], seed: Int) -> Bool {
        var rng = SeededRNG(seed: UInt64(seed))
        let ids = Array(logits.indices).shuffled(using: &rng)
        let a = Array(ids.prefix(2)), b = Array(ids.dropFirst(2).prefix(2))
        let score = FollowingScore(logits: logits, instructed: a, competitor: b)
        let m = Double(logits.max()!)
        var z = 0.0, pa = 0.0, pb = 0.0
        for v in logits { z += exp(Double(v) - m) }
        for i in a { pa += exp(Double(logits[i]) - m) / z }
        for i in b { pb += exp(Double(logits[i]) - m) / z }
        let ok = abs(score.pInstructed - pa) <= 1e-9 + 1e-9 * pa && abs(score.pCompetitor - pb) <= 1e-9 + 1e-9 * pb
            && score.top == logits.firstIndex(of: logits.max()!)
        let qOK = score.q >= 0 && score.q <= 1
        let sOK = pa > 1e-300 && pb > 1e-300 ? abs(score.s - (log(pa) - log(pb))) < 1e-6 : true
        return ok && qOK && sOK
    }

    @Test("MFR per instruction paraphrase: counts per id over conflict items only, in id order, splits kept")
    func followingByInstruction() {
        let items = ConflictGenerator(seed: 11).generate(count: 120)
        // Follows on every third sample; a sample with no matching item and non-conflict kinds are ignored.
        let samples = items.enumerated().map { (id: $1.id, kind: $1.kind.rawValue, follows: $0 % 3 == 0) }
            + [(id: "unknown", kind: "conflict", follows: true)]
        let rows = ModalityFollowing.byInstruction(samples, items: items)
        let conflict = items.enumerated().filter { $1.kind == .conflict && $1.instructionID != nil }
        #expect(!rows.isEmpty)
        #expect(rows.map(\.id) == rows.map(\.id).sorted())
        #expect(rows.reduce(0) { $0 + $1.total } == conflict.count)
        #expect(rows.reduce(0) { $0 + $1.follows } == conflict.filter { $0.offset % 3 == 0 }.count)
        for row in rows {
            let members = conflict.filter { $0.element.instructionID == row.id }
            #expect(row.total == members.count && row.split == members[0].element.instructionSplit?.rawValue)
            #expect(row.text == members[0].element.instruction && row.target == members[0].element.target?.rawValue)
        }
        #expect(ModalityFollowing.byInstruction([], items: items).isEmpty)
    }

    @Test("s = log p_I − log p_C, q ∈ [0, 1] and the top token is the first argmax, for random logits")
    func scoreIdentity() async {
        await propertyCheck(count: 200, input: Gen.float(in: -30...30).array(of: 5...40), Gen.int(in: 0...1000)) { logits, seed in
            let ok = Self.scoreMatchesDirectComputation(logits, seed: seed)
            #expect(ok, "logits \(logits), seed \(seed)")
        }
    }

    @Test("third answers: conflict samples whose top token over the vocabulary starts no candidate of either set")
    func thirdAnswers() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        var items = try Fixtures.items(perTarget: 3)
        // An image-following item whose sets share the first token of "blue": a top token there is no third answer.
        var shared = items[0]
        shared.id = "shared"
        shared.instructed = ["red", "blue"]
        shared.competitor = ["blue", "green"]
        items.append(shared)
        let samples = try items.map { try AnalysisSample($0, session: session) }
        let sharedSample = try #require(samples.last)
        #expect(!sharedSample.shared.isEmpty)
        let vocabulary = session.model.decoder.configuration.vocabularySize
        // Where each sample's top token goes: its instructed set, its competing set, a third token with the
        // instructed (or competing) set second, or a shared token.
        enum Top { case instructed, competitor, thirdFollowing, thirdFailing, shared }
        let plan: [String: Top] = ["c0": .instructed, "c1": .thirdFollowing, "c2": .thirdFailing, "c3": .competitor,
                                   "c4": .thirdFollowing, "c5": .instructed, "shared": .shared]
        var scores: [FollowingScore] = []
        var tops: [Int] = []
        for sample in samples {
            let candidates = Set(sample.instructed + sample.competitor + sample.shared)
            let third = try #require((0..<vocabulary).first { !candidates.contains($0) })
            var logits = [Float](repeating: -4, count: vocabulary)
            let top: Int
            switch plan[sample.id] ?? .thirdFailing {   // consistent items: a third token, which must not count
            case .instructed: top = sample.instructed[0]
            case .competitor: top = sample.competitor[0]
            case .thirdFollowing: top = third; logits[sample.instructed[0]] = 5
            case .thirdFailing: top = third; logits[sample.competitor[0]] = 5
            case .shared: top = sample.shared[0]; logits[sample.instructed[0]] = 5
            }
            logits[top] = 10
            tops.append(top)
            scores.append(FollowingScore(logits: logits, instructed: sample.instructed, competitor: sample.competitor))
        }
        #expect(scores.map(\.top) == tops)
        let r = ModalityFollowing.measure(samples, scores: scores, seed: 3)
        // Image: c0 (instructed), c2 (third), c4 (third), shared → 2 of 4; text: c1 (third), c3, c5 → 1 of 3.
        #expect(r.thirdCounts == ["image": [2, 4], "text": [1, 3], "overall": [3, 7]])
        #expect(r.counts == ["image": [3, 4], "text": [2, 3], "overall": [5, 7]], "third answers can still follow")
        // The MFR's interval method: a percentile bootstrap of the 0/1 indicators (1000 resamples, seeded).
        let indicators: [String: [Double]] = ["image": [0, 1, 1, 0], "text": [1, 0, 0], "overall": [0, 1, 1, 0, 1, 0, 0]]
        for (offset, target) in ["image", "text", "overall"].enumerated() {
            let e = try #require(r.thirdAnswers[target])
            #expect(e == Estimate.bootstrap(indicators[target]!, seed: 3 &+ UInt64(30 + offset)), "\(target): \(e)")
            #expect(e.low < e.value && e.value < e.high, "\(target): \(e)")
        }
    }

    @Test("bootstrap intervals contain the estimate and are seeded")
    func bootstrap() async {
        await propertyCheck(count: 100, input: Gen.float(in: -5...5).array(of: 1...60), Gen.int(in: 0...100000)) { values, seed in
            let v = values.map(Double.init)
            let e1 = Estimate.bootstrap(v, seed: UInt64(seed), resamples: 200)
            let e2 = Estimate.bootstrap(v, seed: UInt64(seed), resamples: 200)
            let inside = e1.low <= e1.value + 1e-12 && e1.value <= e1.high + 1e-12
            #expect(inside && e1 == e2, "\(e1)")
        }
    }

    @Test("window of the knockout sweep", arguments: [(28, 7), (12, 3), (3, 1), (1, 1), (40, 7)])
    func windows(_ layers: Int, _ expected: Int) {
        #expect(InformationFlow.defaultWindow(layers: layers) == expected)
        let w = InformationFlow.window(around: 0, width: expected, layers: layers)
        #expect(w.first == 0 && w.count == expected / 2 + 1)
    }
}
