// The paper's claims as executable hypotheses, on every bundled model with stored golden verdicts
// (GoldenData/claims/<model>.h5) — or, when ARBITER_MODEL is set, on the model folders it lists (paths
// separated by ':' or ',') only, with the dataset folder ARBITER_DATA (default: generated items) and the
// prompt layout ARBITER_LAYOUT (a built-in name or a file; default: the folder's or the model type's). A claim
// that does not hold on a bundled model is a known issue carrying its measured figure: it still runs, and an
// unexpected pass is flagged.
import ArbiterAnalyses
import ArbiterClaims
import ArbiterModels
import Foundation
import Testing

extension Tag {
    /// Heavy tests that run the full analysis suite on a model.
    @Tag static var claims: Self
}

enum ModelsUnderTest {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let goldenClaims = root.appendingPathComponent("GoldenData/claims")

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// Bundled models with stored golden claim results (none when ARBITER_MODEL names the models to test).
    static var bundled: [String] {
        guard external.isEmpty else { return [] }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: goldenClaims.path)) ?? []
        return files.filter { $0.hasSuffix(".h5") }.map { String($0.dropLast(3)) }.sorted()
    }

    /// Paths from ARBITER_MODEL.
    static var external: [String] {
        let value = ProcessInfo.processInfo.environment["ARBITER_MODEL"] ?? ""
        return value.split(whereSeparator: { $0 == ":" || $0 == "," }).map(String.init).filter { !$0.isEmpty }
    }

    static var all: [String] { bundled.map { "GoldenData/models/\($0)" } + external }

    /// A path from the environment or the repository: absolute, or relative to the current folder if it
    /// exists there, else to the repository root.
    static func url(_ path: String) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path) }
        let here = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
        return FileManager.default.fileExists(atPath: here.path) ? here : root.appendingPathComponent(path)
    }

    /// The claim run of `model`: ARBITER_DATA and ARBITER_LAYOUT apply to the models of ARBITER_MODEL.
    static func input(_ model: String) throws -> ClaimRunInput {
        var input = ClaimRunInput(model: url(model))
        guard !external.isEmpty else { return input }
        if let data = environment["ARBITER_DATA"], !data.isEmpty { input.data = url(data) }
        if let layout = environment["ARBITER_LAYOUT"], !layout.isEmpty {
            input.layout = try PromptLayout.named(layout.contains("/") || layout.hasSuffix(".json") ? url(layout).path : layout)
        }
        return input
    }
}

/// Each model's analyses run once per test process, whichever claim test asks first.
final class ClaimRunCache: @unchecked Sendable {
    static let shared = ClaimRunCache()
    private let lock = NSLock()
    private var results: [String: Result<(AnalysisResults, [ClaimResult]), any Error>] = [:]

    func claims(for model: String) throws -> (AnalysisResults, [ClaimResult]) {
        lock.lock()
        defer { lock.unlock() }
        if let r = results[model] { return try r.get() }
        let r = Result { try ClaimRun.evaluate(try ModelsUnderTest.input(model)) }
        results[model] = r
        return try r.get()
    }
}

@Suite("Claims", .tags(.claims))
struct ClaimTests {
    static var cases: [(String, String)] { ModelsUnderTest.all.flatMap { m in Claims.all.map { (m, $0.id) } } }

    @Test("claim holds", arguments: cases)
    func claimHolds(_ model: String, _ id: String) throws {
        let (_, claims) = try ClaimRunCache.shared.claims(for: model)
        let claim = try #require(claims.first { $0.id == id })
        let name = ClaimRun.displayName(of: ModelsUnderTest.url(model))
        let golden = try? GoldenClaims(url: ModelsUnderTest.goldenClaims.appendingPathComponent("\(name).h5"))
        if let expected = golden?.entries[id], expected.verdict <= .fails {
            withKnownIssue(Comment(rawValue: "\(name): claim \(id) is not shown to hold on this bundled model "
                                   + "(stored verdict: \(expected.verdict.rawValue), statistic \(expected.statistic))")) {
                #expect(claim.verdict >= .holdsDirectionally, "\(name) \(claim.summary)")
            }
        } else {
            #expect(claim.verdict >= .holdsDirectionally, "\(name) \(claim.summary)")
        }
    }

    @Test("verdicts and statistics equal the stored golden claim results", arguments: ModelsUnderTest.bundled)
    func matchesGolden(_ name: String) throws {
        let golden = try GoldenClaims(url: ModelsUnderTest.goldenClaims.appendingPathComponent("\(name).h5"))
        #expect(golden.claimsVersion == Claims.version, "stored with claims version \(golden.claimsVersion); re-store with `arbiter verify --store-golden`")
        let (_, claims) = try ClaimRunCache.shared.claims(for: "GoldenData/models/\(name)")
        for c in claims {
            let g = try #require(golden.entries[c.id], "no stored result for \(c.id)")
            #expect(c.verdict == g.verdict, "\(name) \(c.id): verdict \(c.verdict.rawValue), stored \(g.verdict.rawValue)")
            // Statistics are stored as float32 and recomputed deterministically: agreement to float32 rounding
            // (NaN statistics must stay NaN).
            let same = (c.statistic.isNaN && g.statistic.isNaN) || abs(c.statistic - g.statistic) <= 1e-5 * max(1, abs(g.statistic))
            #expect(same, "\(name) \(c.id): statistic \(c.statistic), stored \(g.statistic)")
        }
    }
}

@Suite("Claim specification")
struct ClaimSpecificationTests {
    @Test("seven claims, unique ids, each with thresholds, a source, a control and a split")
    func specification() {
        #expect(Claims.all.count == 7)
        #expect(Set(Claims.all.map(\.id)).count == Claims.all.count)
        for c in Claims.all {
            #expect(!c.threshold.isEmpty && !c.thresholdSource.isEmpty && !c.directional.isEmpty && !c.control.isEmpty && !c.split.isEmpty, "\(c.id)")
        }
    }

    @Test("display names: the folder's name, or for a generic folder its parent's too, or the hub repository")
    func displayNames() {
        #expect(ClaimRun.displayName(of: URL(fileURLWithPath: "/m/llava-1.5-7b-hf")) == "llava-1.5-7b-hf")
        #expect(ClaimRun.displayName(of: URL(fileURLWithPath: "/runs/my-llava/model")) == "my-llava/model")
        #expect(ClaimRun.displayName(of: URL(fileURLWithPath: "/runs/my-llava/checkpoint-500")) == "my-llava/checkpoint-500")
        let snapshot = "/cache/models--llava-hf--llava-1.5-7b-hf/snapshots/8c85e9a4d626b7b908448be32c1ba5ad79b95e76"
        #expect(ClaimRun.displayName(of: URL(fileURLWithPath: snapshot)) == "llava-hf/llava-1.5-7b-hf")
    }

    @Test("every claim id has a statistic, in specification order")
    func statisticsCoverSpecification() throws {
        // Evaluated on the smallest possible results: ids and order must match the specification.
        let ids = Claims.all.map(\.id)
        #expect(ids == ["anchors", "shallow-nonselective", "deep-selective", "mlp-inertia", "heads-blocking", "heads-amplification", "specificity"])
    }
}
