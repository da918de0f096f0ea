// Parallel.forEachRange: disjoint ranges covering the work exactly, and kernels that give the same bits
// whether or not they were split.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("Parallel row loops")
struct ParallelTests {
    struct Case: Sendable, CustomStringConvertible {
        let count: Int, cost: Int
        var description: String { "\(count) items × cost \(cost)" }
    }

    /// Records the ranges handed to the body (concurrently).
    final class Ranges: @unchecked Sendable {
        private let lock = NSLock()
        private var ranges: [Range<Int>] = []
        func add(_ r: Range<Int>) { lock.withLock { ranges.append(r) } }
        var sorted: [Range<Int>] { lock.withLock { ranges.sorted { $0.lowerBound < $1.lowerBound } } }
    }

    @Test("ranges are non-empty, disjoint and cover 0..<count exactly")
    func coverage() async {
        await propertyCheck(count: 200, input: generator { rng in
            Case(count: Int.random(in: 0...5000, using: &rng), cost: pick([1, 7, 100, 4096, 1 << 20], &rng))
        }) { c in
            let seen = Ranges()
            Parallel.forEachRange(c.count, costPerItem: c.cost) { seen.add($0) }
            let ranges = seen.sorted
            var next = 0, ok = true
            for r in ranges {
                if r.isEmpty || r.lowerBound != next { ok = false }
                next = r.upperBound
            }
            let covered = next == c.count
            let chunksBounded = ranges.count <= max(1, Parallel.workers)
            #expect(ok && covered && chunksBounded, "\(c): \(ranges)")
        }
    }

    @Test("split kernels equal their row-by-row form bit for bit")
    func splitKernelsAreExact() {
        var rng = SplitMix64(seed: 11)
        // Large enough that softmaxRows and applyGated take the parallel path.
        let x = randomTensor([300, 257], in: -30...30, &rng)
        var whole = x
        whole.scalars.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: 300, columns: 257) }
        var byRow = x
        byRow.scalars.withUnsafeMutableBufferPointer { p in
            for r in 0..<300 { softmaxRows(p.baseAddress! + r * 257, rows: 1, columns: 257) }
        }
        #expect(whole == byRow)
        var gate = randomTensor([300, 257], in: -8...8, &rng)
        let up = randomTensor([300, 257], in: -2...2, &rng)
        let expected = zip(gate.scalars, up.scalars).map { Activation.silu($0) * $1 }
        Activation.silu.applyGated(&gate, up: up)
        #expect(gate.scalars == expected)
    }
}
