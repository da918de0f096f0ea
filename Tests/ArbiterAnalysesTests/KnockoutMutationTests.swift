// Mutation check for the knockout analysis (#20 "Check"): on the `anchored` control (GoldenData/controls,
// built by Tools/make_controls.py), whose cues reach the answer only through the instruction tokens (PyTorch:
// knocking cues→instruction out of layer 1 takes both targets' MFR to 0), the knockout sweep must show it;
// a knockout that does nothing (a test-only mutation of InformationFlow) must be caught by the same check.
@testable import ArbiterAnalyses
import ArbiterData
import ArbiterModels
import Foundation
import Testing

@Suite("Knockout mutation")
struct KnockoutMutationTests {
    static let controls = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("GoldenData/controls")

    /// The cues→instruction shifts of 16 conflict items per target of the anchored control.
    static func shifts() throws -> InformationFlowResult {
        let session = try ModelSession(directory: controls.appendingPathComponent("anchored"))
        let set = try ConflictDataset.load(directory: controls.appendingPathComponent("data"))
        let items = try ProbeItems.make(set).filter { $0.kind == "conflict" }
        let chosen = InstructionTarget.allCases.flatMap { t in items.filter { $0.target == t }.prefix(16) }
        let samples = try chosen.map { try AnalysisSample($0, session: session) }
        let runner = AnalysisRunner(session: session)
        let baselines = try samples.map { try runner.baseline($0) }
        return try InformationFlow.measure(runner: runner, samples: samples, baselines: baselines,
                                           edges: [FlowEdge("cues", "instruction")], seed: 1)
    }

    /// What the planted transfer must show: both targets' shift at layer 1 below −0.5 with its CI below 0.
    static func problems(_ r: InformationFlowResult) -> [String] {
        InstructionTarget.allCases.compactMap { t in
            guard let e = r.shift["cues->instruction"]?[t.rawValue]?[1] else { return "no follow-\(t.rawValue) curve" }
            return e.value < -0.5 && e.high < 0 ? nil : "follow-\(t.rawValue): layer-1 shift \(e) is not below −0.5"
        }
    }

    @Test("the planted cues→instruction transfer shows in the knockout sweep")
    func knockoutSeesTransfer() throws {
        let problems = Self.problems(try Self.shifts())
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("mutation: a knockout that does nothing is caught by the same check")
    func knockoutMutantCaught() throws {
        let r = try InformationFlow.$mutation.withValue(.knockoutDoesNothing) { try Self.shifts() }
        #expect(Self.problems(r).count == 2, "the mutant went unnoticed: \(r.shift)")
    }
}
