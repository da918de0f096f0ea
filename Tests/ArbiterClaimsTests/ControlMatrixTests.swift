// The claims × controls confusion matrix (issue #19): every planted-mechanism control under
// GoldenData/controls/ (built by Tools/make_controls.py, its mechanism verified in PyTorch) states the verdict
// each claim must get, derived from its design before Arbiter ran (expected_verdicts.json, mirrored in its
// MODEL_CARD.md). `arbiter verify`'s analyses must give exactly that verdict for every claim on every control —
// not as known issues: a mismatch means an analysis is blind to a mechanism that is there, or sees one that is
// not.
import ArbiterAnalyses
import ArbiterClaims
import ArbiterTensor
import Foundation
import Testing

/// A control folder's expected verdicts, checked against the claims specification.
struct ControlExpectation: Sendable {
    let folder: URL
    let name: String
    let expected: [String: Verdict]

    enum Problem: Error, CustomStringConvertible, Equatable {
        case unreadable(folder: String, reason: String)
        case missingClaim(folder: String, claim: String)
        case unknownClaim(folder: String, claim: String)
        case unknownVerdict(folder: String, claim: String, verdict: String)

        var description: String {
            switch self {
            case .unreadable(let f, let r): return "control \(f): expected_verdicts.json unreadable: \(r)"
            case .missingClaim(let f, let c): return "control \(f): expected_verdicts.json has no verdict for claim '\(c)'"
            case .unknownClaim(let f, let c):
                return "control \(f): expected_verdicts.json names an unknown claim '\(c)' (known: "
                    + Claims.all.map(\.id).joined(separator: ", ") + ")"
            case .unknownVerdict(let f, let c, let v):
                return "control \(f): expected_verdicts.json gives claim '\(c)' the verdict '\(v)' (expected one of: "
                    + "holds, holds directionally, fails)"
            }
        }
    }

    /// Reads `folder/expected_verdicts.json` ({"expected": {claim: verdict}}); every claim of the
    /// specification must have a verdict and every named claim must exist.
    static func load(_ folder: URL) throws -> ControlExpectation {
        let name = folder.lastPathComponent
        let file = folder.appendingPathComponent("expected_verdicts.json")
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: try Data(contentsOf: file)) } catch {
            throw Problem.unreadable(folder: name, reason: "\(error)")
        }
        guard let root = object as? [String: Any], let table = root["expected"] as? [String: Any] else {
            throw Problem.unreadable(folder: name, reason: "no object \"expected\" mapping claims to verdicts")
        }
        let known = Set(Claims.all.map(\.id))
        for claim in table.keys.sorted() where !known.contains(claim) {
            throw Problem.unknownClaim(folder: name, claim: claim)
        }
        var expected: [String: Verdict] = [:]
        for claim in Claims.all.map(\.id) {
            guard let value = table[claim] else { throw Problem.missingClaim(folder: name, claim: claim) }
            guard let text = value as? String, let verdict = Verdict(rawValue: text) else {
                throw Problem.unknownVerdict(folder: name, claim: claim, verdict: "\(value)")
            }
            expected[claim] = verdict
        }
        return ControlExpectation(folder: folder, name: name, expected: expected)
    }
}

enum Controls {
    static let root = ModelsUnderTest.root.appendingPathComponent("GoldenData/controls")
    static let data = root.appendingPathComponent("data")

    /// Every control folder (a folder under GoldenData/controls holding a config.json).
    static var names: [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return entries.filter {
            FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent("config.json").path)
        }.sorted()
    }

    /// Each control's verdicts, computed once per test process.
    final class Cache: @unchecked Sendable {
        static let shared = Cache()
        private let lock = NSLock()
        private init() { Allocator.keepFreedMemory() }  // as the `arbiter` command does
        private var results: [String: Result<[ClaimResult], any Error>] = [:]

        func claims(_ name: String) throws -> [ClaimResult] {
            lock.lock()
            defer { lock.unlock() }
            if let r = results[name] { return try r.get() }
            let r = Result {
                try ClaimRun.evaluate(ClaimRunInput(model: root.appendingPathComponent(name), data: data)).1
            }
            results[name] = r
            return try r.get()
        }
    }
}

@Suite("Claims × controls matrix", .tags(.claims))
struct ControlMatrixTests {
    @Test("the zoo has the six designed contrasts")
    func zoo() {
        #expect(Set(Controls.names).isSuperset(of: ["anchored", "direct", "helpful-mlp", "dense", "selective-transfer",
                                                    "shared-route"]),
                "controls found: \(Controls.names)")
    }

    @Test("every control's card states a verdict for every claim and names no unknown claim", arguments: Controls.names)
    func expectationsComplete(_ name: String) throws {
        let e = try ControlExpectation.load(Controls.root.appendingPathComponent(name))
        #expect(e.expected.count == Claims.all.count)
        let card = try String(contentsOf: Controls.root.appendingPathComponent(name).appendingPathComponent("MODEL_CARD.md"),
                              encoding: .utf8)
        for claim in Claims.all.map(\.id) {
            #expect(card.contains("| \(claim) | \(e.expected[claim]!.rawValue) |"),
                    "control \(name): MODEL_CARD.md does not state '\(claim)' as \(e.expected[claim]!.rawValue) like expected_verdicts.json")
        }
    }

    @Test("a card lacking a claim, naming an unknown claim or verdict fails, naming the folder and the claim")
    func badCards() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-controls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ name: String, _ table: [String: String]) throws -> URL {
            let folder = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: ["expected": table])
                .write(to: folder.appendingPathComponent("expected_verdicts.json"))
            return folder
        }
        var full = Dictionary(uniqueKeysWithValues: Claims.all.map { ($0.id, "holds") })
        full.removeValue(forKey: "mlp-inertia")
        #expect(throws: ControlExpectation.Problem.missingClaim(folder: "lacking", claim: "mlp-inertia")) {
            try ControlExpectation.load(try write("lacking", full))
        }
        full["mlp-inertia"] = "holds"
        full["mlp-intertia"] = "fails"
        do {
            _ = try ControlExpectation.load(try write("typo", full))
            Issue.record("an unknown claim was accepted")
        } catch let p as ControlExpectation.Problem {
            #expect(p == .unknownClaim(folder: "typo", claim: "mlp-intertia"))
            #expect(p.description.contains("control typo") && p.description.contains("'mlp-intertia'"))
        }
        full.removeValue(forKey: "mlp-intertia")
        full["anchors"] = "maybe"
        #expect(throws: ControlExpectation.Problem.unknownVerdict(folder: "odd", claim: "anchors", verdict: "maybe")) {
            try ControlExpectation.load(try write("odd", full))
        }
    }

    static var cases: [(String, String)] { Controls.names.flatMap { c in Claims.all.map { (c, $0.id) } } }

    @Test("Arbiter's verdict equals the design's", arguments: cases)
    func verdictMatchesDesign(_ control: String, _ claim: String) throws {
        let expectation = try ControlExpectation.load(Controls.root.appendingPathComponent(control))
        let result = try #require(try Controls.Cache.shared.claims(control).first { $0.id == claim })
        let expected = try #require(expectation.expected[claim])
        #expect(result.verdict == expected,
                "control \(control), claim \(claim): expected \(expected.rawValue) by design, Arbiter says \(result.verdict.rawValue) — \(result.summary)")
    }
}
