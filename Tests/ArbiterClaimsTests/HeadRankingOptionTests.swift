// The two-stage head ranking option leaves the default protocol's stored results as they were: the stored golden
// claim files read as exact rankings, and their analysis results re-encode to the stored bytes (no field added).
import ArbiterAnalyses
import ArbiterClaims
import ArbiterFormats
import Foundation
import Testing

@Suite("Head ranking option and the stored results")
struct HeadRankingOptionTests {
    @Test("stored golden results read as exact rankings and re-encode to the stored bytes",
          arguments: ModelsUnderTest.bundled)
    func storedResultsUnchanged(_ name: String) throws {
        let url = ModelsUnderTest.goldenClaims.appendingPathComponent("\(name).h5")
        let reader = try HDF5Reader(url: url)
        let stored = Data(try reader.readInt64("analysis_results").values.map { UInt8($0) })
        let results = try AnalysisResults.decode(stored, file: url.path)
        #expect(results.configuration.headRanking == nil && results.ranking.twoStage == nil)
        #expect(try results.jsonData() == stored, "\(name): re-encoded results differ from the stored ones")
        #expect(ClaimRun.configuration(ClaimRunSettings()) == results.configuration,
                "\(name): stored with another configuration than the default claim run's")
    }

    @Test("a claim run's settings carry the option into the configuration and the golden file's settings text")
    func settings() throws {
        var s = ClaimRunSettings()
        #expect(ClaimRun.configuration(s).headRanking == nil)
        s.headRanking = TwoStageRanking(screen: .attribution, candidates: 10)
        #expect(ClaimRun.configuration(s).headRanking == s.headRanking)
        let results = SyntheticResults.results(seed: 5)
        let claims = ClaimStatistics.evaluate(results)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ranking-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try GoldenClaims.write(claims, results: results, settings: s, to: folder.appendingPathComponent("a.h5"))
        try GoldenClaims.write(claims, results: results, settings: ClaimRunSettings(),
                               to: folder.appendingPathComponent("b.h5"))
        #expect(try GoldenClaims(url: folder.appendingPathComponent("a.h5")).settings
                == "seed 260203677, count 240, random sets 200, head ranking dla:10")
        #expect(try GoldenClaims(url: folder.appendingPathComponent("b.h5")).settings
                == "seed 260203677, count 240, random sets 200")
    }
}
