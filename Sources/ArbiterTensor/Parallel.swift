// Row-parallel loops for the elementwise kernels (softmax, norms, activations) that sit between BLAS calls.
// BLAS uses every core for the matrix products; without this the kernels in between ran on one core while
// the others idled. Each row (or element) is computed by the same code whatever the split, so results are
// bit-identical for any number of threads.
import Dispatch
import Foundation

public enum Parallel {
    /// Worker count: the cores this process may use.
    /// `ARBITER_KERNEL_THREADS` overrides it (1 = serial).
    public static let workers: Int = {
        if let text = ProcessInfo.processInfo.environment["ARBITER_KERNEL_THREADS"], let n = Int(text), n >= 1 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Work (in scalar operations) below which splitting costs more than it saves.
    public static let minimumWork = 1 << 15

    /// Runs `body` with `forEachRange` serial on this thread: for work that already runs side by side on every
    /// core (`AnalysisRunner.parallelMap`), where splitting a kernel again only adds thread hand-offs.
    public static func serially<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(serialKey)
        pthread_setspecific(serialKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(serialKey, previous) }
        return try body()
    }

    /// Whether this thread is inside `serially`.
    public static var isSerial: Bool { pthread_getspecific(serialKey) != nil }

    private static let serialKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "Parallel: no thread-specific key left")
        return key
    }()

    /// Calls `body` on contiguous, disjoint ranges covering `0..<count`, concurrently when `count · costPerItem`
    /// is large enough, more than one core is available and the thread is not inside `serially`; otherwise
    /// once, with the whole range.
    @inlinable
    public static func forEachRange(_ count: Int, costPerItem: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(workers, count, max(1, count * max(costPerItem, 1) / minimumWork))
        if chunks <= 1 || isSerial {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            // The ranges are disjoint and `concurrentPerform` returns only when every chunk is done.
            nonisolated(unsafe) let body = escapable
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = count * c / chunks, end = count * (c + 1) / chunks
                if start < end { body(start..<end) }
            }
        }
    }
}
