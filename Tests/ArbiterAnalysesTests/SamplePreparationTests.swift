// Runs whose numbers would mean nothing are refused: too many items skipped, none left, an empty dataset.
import ArbiterAnalyses
import ArbiterModels
import Foundation
import Testing

@Suite("Sample preparation refuses meaningless runs")
struct SamplePreparationTests {
    /// `bad` of the items made unscoreable: their instructed and competing answers are the same word.
    static func items(total: Int, bad: Int) throws -> [ProbeItem] {
        var items = Array(try Fixtures.items(perTarget: (total + 1) / 2).prefix(total))
        for i in 0..<bad { items[i].competitor = items[i].instructed }
        return items
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test("up to 10% of the items may be skipped, each with its reason")
    func withinShare() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava)
        let (samples, skipped) = try SamplePreparation.prepare(try Self.items(total: 10, bad: 1), session: session)
        #expect(samples.count == 9)
        #expect(skipped.map(\.id) == ["c0"])
        #expect(skipped.first?.reason.contains("start with the same tokens") == true)
    }

    @Test("more than 10% skipped is refused unless keepGoing; none left is refused always")
    func overShare() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava)
        let items = try Self.items(total: 10, bad: 2)
        let m = message { _ = try SamplePreparation.prepare(items, session: session) }
        #expect(m.contains("refusing a meaningless run: 2 of 10 items cannot be scored"), "\(m)")
        #expect(m.contains("--keep-going runs on the rest") && m.contains("c0:"), "\(m)")
        let (samples, skipped) = try SamplePreparation.prepare(items, session: session, policy: ItemPolicy(keepGoing: true))
        #expect(samples.count == 8 && skipped.count == 2)
        let none = message {
            _ = try SamplePreparation.prepare(try Self.items(total: 4, bad: 4), session: session,
                                              policy: ItemPolicy(keepGoing: true))
        }
        #expect(none.contains("4 of 4 items cannot be scored") && none.contains("none is left"), "\(none)")
        #expect(message { _ = try SamplePreparation.prepare([], session: session) }.contains("no items"))
    }
}
